"""The test bench: throw-away qbittorrent-nox instances, magnetd daemons and magnet files.

Everything a scenario starts is registered on an ``ExitStack`` so that it is
stopped however the scenario ends.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import json
import os
import platform
import secrets
import subprocess
import sys
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.features import Features, Options
from benchmarks.probes import BenchError
from tests.daemon import Daemon, instance
from tests.qbt import PROGRAM, Qbt, QbtApi

CLONE_NEWNET = 0x40000000
DEFAULT_PROBE = 10.0  # magnetd's default probe_interval


@dataclass(frozen=True)
class Magnet:
    """One magnet link with a unique ``dn=`` name, so qBittorrent's log line identifies it."""

    name: str
    infohash: str

    @property
    def uri(self) -> str:
        return f"magnet:?xt=urn:btih:{self.infohash}&dn={self.name}"

    @property
    def file_name(self) -> str:
        return f"{self.name}.magnet"


def magnets(prefix: str, count: int) -> list[Magnet]:
    """``count`` random magnets named ``<prefix>-<i>``."""
    return [Magnet(f"{prefix}-{i:05d}", secrets.token_hex(20)) for i in range(count)]


def stage(folder: Path, items: list[Magnet]) -> None:
    """Write each magnet as ``.<name>.tmp`` in ``folder`` (hidden: nobody picks it up yet)."""
    folder.mkdir(parents=True, exist_ok=True)
    for item in items:
        (folder / f".{item.file_name}.tmp").write_text(item.uri + "\n", encoding="ascii")


def quiet_disk() -> None:
    """Write out every dirty page (``sync``) before a timed part starts: the files just staged
    and what earlier scenarios left, so that no contender pays for another's writeback."""
    os.sync()


def rename_in(staging: Path, target: Path, items: list[Magnet]) -> None:
    """Rename every staged file into ``target`` (same file system), one ``rename(2)`` each."""
    for item in items:
        os.rename(staging / f".{item.file_name}.tmp", target / item.file_name)


class Rig:
    """Starts instances and daemons below ``root`` and registers their clean-up."""

    def __init__(self, root: Path, profile_dir: Path | None = None, features: Features | None = None) -> None:
        self.root = root
        self.profile_dir = profile_dir  # --profile: py-spy output goes here
        self.features = features or Features(Options())
        self.started: list[str] = []  # names of the daemons started, for :meth:`notified`
        self._serial = 0

    def folder(self, name: str) -> Path:
        self._serial += 1
        path = self.root / f"{self._serial:02d}-{name}"
        path.mkdir(parents=True)
        return path

    def qbt(self, stack: ExitStack, name: str) -> Qbt:
        """A fresh, running qbittorrent-nox, stopped when ``stack`` closes."""
        server = Qbt(self.folder(f"qbt-{name}"))
        stack.callback(server.stop)
        server.start(timeout=60)
        return server

    def watched_qbt(self, stack: ExitStack, name: str) -> tuple[Qbt, Path]:
        """A fresh instance whose built-in watched folder is enabled (checked in its preferences)."""
        server = self.qbt(stack, name)
        watch = self.folder(f"watch-{name}")
        api = logged_in(server)
        form = {"json": json.dumps({"scan_dirs": {str(watch): 1}})}
        api.request("POST", "app/setPreferences", data=form)
        dirs = api.request("GET", "app/preferences").json().get("scan_dirs", {})
        if dirs.get(str(watch)) != 1:
            raise BenchError(f"qBittorrent did not take the watched folder: scan_dirs={dirs!r}")
        return server, watch

    def daemon(self, stack: ExitStack, server: Qbt, **settings: Any) -> Daemon:
        """A running magnetd for ``server`` with product defaults unless ``settings`` say otherwise."""
        return self.daemon_for(stack, [instance("bench", server.url, server.password)], **settings)

    def daemon_for(self, stack: ExitStack, instances: list[dict[str, Any]], **settings: Any) -> Daemon:
        """A running magnetd for ``instances`` (``tests.daemon.instance`` entries), stopped with ``stack``."""
        config: dict[str, Any] = {"probe_interval": DEFAULT_PROBE, "watch": {}}
        config.update(settings)
        folder = self.folder("magnetd")
        env: dict[str, str] = {}
        self.features.configure(config, env, folder.name)
        runner = Daemon(folder, instances, **config)
        runner.env.update(env)
        self.started.append(folder.name)
        for sub in (runner.inbox, runner.sent, runner.failed):
            sub.mkdir(parents=True, exist_ok=True)
        stack.callback(_stop_daemon, runner)
        runner.start()
        return runner

    def notified(self, label: str) -> dict[str, float]:
        """With ``--notify``: what the receivers got from the daemons started since the last call.

        Call it once those daemons stopped (a stopping daemon sends what waits).
        """
        names, self.started = self.started, []
        totals: dict[str, float] = {}
        for name in names:
            for key, count in self.features.tally(name).items():
                totals[f"notify_{label}_{key}"] = totals.get(f"notify_{label}_{key}", 0.0) + count
        return totals


def _stop_daemon(runner: Daemon) -> None:
    if runner.process is not None and runner.alive():
        runner.stop()


def logged_in(server: Qbt) -> QbtApi:
    """A test API client for ``server``, logged in."""
    api = server.api()
    if not api.login():
        raise BenchError(f"cannot log in to {server.url}")
    return api


def daemon_pid(runner: Daemon) -> int:
    if runner.process is None or runner.process.poll() is not None:
        raise BenchError(f"magnetd is not running; its log ends: {runner.output()[-1500:]}")
    return runner.process.pid


def enter_private_network() -> str:
    """As root, move this process into a new network namespace with only loopback, up.

    Everything started afterwards (qbittorrent-nox, magnetd) inherits it, so
    nothing can reach beyond this machine. Returns a description for the results.
    """
    if os.geteuid() != 0:
        return "host network (not root); instances listen on 127.0.0.1 only"
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        return f"host network (unshare failed: {os.strerror(ctypes.get_errno())})"
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, capture_output=True)
    return "private network namespace with only loopback"


def machine(workdir: Path, network: str) -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_build": python_build(),
        "qbittorrent_nox": qbt_version(),
        "magnetd": magnetd_version(),
        "workdir_fs": filesystem_of(workdir),
        "network": network,
    }


def python_build() -> str:
    """The interpreter the daemons run on (they run on this one): its file, and how libpython is linked.

    Two builds of Python 3.11 gave magnetd clearly different CPU per file on the same machine
    (the benchmarks README's ninth round), so every run names its interpreter.
    """
    executable = os.path.realpath(sys.executable)
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/maps").read_text().splitlines():
            if "/libpython" in line:
                return f"{executable}, libpython shared ({line.split()[-1]})"
        return f"{executable}, libpython linked in"
    return executable


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def qbt_version() -> str:
    try:
        done = subprocess.run([PROGRAM, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    return done.stdout.strip() or "unknown"


def magnetd_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("magnetd")
    except PackageNotFoundError:
        return "unknown"


def filesystem_of(path: Path) -> str:
    from magnetd.intake.watcher import filesystem_type

    return filesystem_type(path) or "unknown"
