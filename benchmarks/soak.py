"""Soak: ``sudo .venv/bin/python -m benchmarks.soak [--minutes 10]``.

Two real qbittorrent-nox instances (a ``requires_vpn`` primary whose VPN gateway is
a host in its own network namespace, and a fallback) and the real ``magnetd run``,
all inside a private network namespace. For N minutes a mixed stream of files goes
into the inbox while faults are injected on a schedule (VPN flaps, a restart of the
primary, SIGHUP reloads, one ``kill -9`` of the daemon and its restart); then the
inbox drains and every file and magnet is accounted for. Prints a table and writes
``soak.json``. Exit status 1 when a check that must be zero is not (a magnet lost, a
file handled twice, junk sent, ...) or the run could not finish; 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.probes import FolderWatcher
from benchmarks.rig import Rig, enter_private_network, machine
from benchmarks.soakload import (
    CANONICAL,
    EVENTS,
    Load,
    account,
    evidence,
    failures,
    listed,
    processes,
    table,
    visible_files,
)
from tests.daemon import Daemon, instance, wait_for
from tests.netns import Gateway
from tests.qbt import Qbt

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
PROBE = 1.0  # the daemon's probe_interval
SAMPLE_EVERY = 5.0  # seconds between two /proc samples of the daemon


def proc_sample(pid: int) -> dict[str, float] | None:
    """RSS (MiB), open fds and threads of ``pid``, or None when it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {"rss_mb": int(fields["VmRSS"].split()[0]) / 1024, "fds": fds, "threads": int(fields["Threads"])}


class Sampler(threading.Thread):
    """Samples the daemon's current process every ``every`` seconds (and on demand)."""

    def __init__(self, daemon: Daemon, t0: float, every: float = SAMPLE_EVERY) -> None:
        super().__init__(name="soak-sampler", daemon=True)
        self.daemon_runner, self.t0, self.every = daemon, t0, every
        self.series: list[dict[str, Any]] = []
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def take(self, tag: str = "") -> None:
        process = self.daemon_runner.process
        if process is None or process.poll() is not None:
            return
        found = proc_sample(process.pid)
        if found is not None:
            with self._lock:
                now = round(time.monotonic() - self.t0, 1)
                self.series.append({"t": now, "pid": process.pid, **found, "tag": tag})

    def run(self) -> None:
        while not self._halt.wait(self.every):
            self.take()

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(10)


def schedule(seconds: float) -> list[tuple[float, str]]:
    """When each fault happens: four VPN flaps, bursts, SIGHUPs, one primary restart, one kill -9."""
    flap = max(3.0, min(15.0, 0.04 * seconds))
    plan = [(0.15, "burst"), (0.20, "sighup"), (0.30, "qbt_restart"), (0.39, "sighup"), (0.45, "burst")]
    plan += [(0.60, "kill9"), (0.75, "burst"), (0.75, "sighup")]
    at = [(f * seconds, name) for f, name in plan]
    for f in (0.10, 0.38, 0.68, 0.88):
        at += [(f * seconds, "vpn_down"), (f * seconds + flap, "vpn_up")]
    return sorted(at)


@dataclass
class Parts:
    """What the run started, for the faults to act on."""

    primary: Qbt
    fallback: Qbt
    gateway: Gateway
    daemon: Daemon
    load: Load
    sampler: Sampler
    t0: float
    faults: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def daemon_running(daemon: Daemon, pid: int) -> bool:
    """``magnetd status --json`` says process ``pid`` is running."""
    with suppress(ValueError):
        snap = daemon.status()
        return bool(snap.get("running")) and snap.get("pid") == pid
    return False


def restart_daemon(daemon: Daemon) -> tuple[int, float]:
    """Start the daemon again (after a kill); its new pid and how long it took to run."""
    started = time.monotonic()
    daemon.start(wait=False)
    assert daemon.process is not None
    pid = daemon.process.pid
    wait_for(lambda: daemon_running(daemon, pid), 60, f"the restarted daemon (pid {pid}) to run")
    return pid, time.monotonic() - started


class Faults(threading.Thread):
    """Runs ``plan`` (seconds after ``parts.t0``, fault name); each fault is noted in ``parts.faults``."""

    def __init__(self, parts: Parts, plan: list[tuple[float, str]]) -> None:
        super().__init__(name="soak-faults", daemon=True)
        self.parts, self.plan = parts, plan
        self._halt = threading.Event()
        self.actions: dict[str, Callable[[], str]] = {
            "vpn_down": lambda: self._run(parts.gateway.down, "gateway link down"),
            "vpn_up": lambda: self._run(parts.gateway.up, "gateway link up"),
            "burst": lambda: self._run(lambda: parts.load.burst(200), "200 staged .magnet files renamed in"),
            "sighup": self.sighup,
            "qbt_restart": self.qbt_restart,
            "kill9": self.kill9,
        }

    def run(self) -> None:
        for at, name in self.plan:
            if self._halt.wait(max(0.0, self.parts.t0 + at - time.monotonic())):
                return
            started = time.monotonic() - self.parts.t0
            try:
                detail = self.actions[name]()
            except Exception as exc:  # a fault that fails is reported; the soak goes on
                detail = f"FAILED: {exc!r}"
                self.parts.errors.append(f"fault {name} at {started:.1f} s: {exc!r}")
            self.parts.faults.append({"t": round(started, 1), "fault": name, "detail": detail})
            print(f"   {started:7.1f} s  {name:<12} {detail}", flush=True)

    @staticmethod
    def _run(action: Callable[[], object], detail: str) -> str:
        action()
        return detail

    def _pid(self) -> int:
        process = self.parts.daemon.process
        assert process is not None
        return process.pid

    def sighup(self) -> str:
        os.kill(self._pid(), signal.SIGHUP)
        return f"SIGHUP to pid {self._pid()}"

    def qbt_restart(self) -> str:
        """A burst of files, then the primary stopped and started on the same profile and port."""
        self.parts.load.burst(150)
        started = time.monotonic()
        self.parts.primary.stop()
        stopped = time.monotonic()
        self.parts.primary.start(timeout=60)
        up = time.monotonic() - stopped
        return f"150 files; primary stopped in {stopped - started:.1f} s, answering {up:.1f} s later"

    def kill9(self) -> str:
        """A burst of files, SIGKILL to the daemon while it moves them to sent/, and a restart."""
        sent = self.parts.daemon.sent
        watcher = FolderWatcher(sent)  # inotify: the kill follows the first arrival within a millisecond
        watcher.start()
        try:
            names = {item.path for item in self.parts.load.burst(300)}

            def moving() -> bool:  # 30 of them moved: the batch is being landed
                return len(names.intersection(watcher.seen.times)) >= 30

            watcher.seen.wait(moving, 30, "the burst in sent/")
            old = self._pid()
            self.parts.daemon.kill()
        finally:
            watcher.stop()
        moved = sum((sent / name).exists() for name in names)
        pid, took = restart_daemon(self.parts.daemon)
        self.parts.sampler.take("restart")
        return (
            f"300 files; pid {old} killed with {moved} of them in sent/; pid {pid} running after {took:.1f} s"
        )

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(180)


def stream(load: Load, until: float, rate: float, seed: int) -> None:
    """Files of random kinds, ``rate`` a second on average (exponential gaps), until ``until``."""
    gaps = random.Random(seed + 1)
    while time.monotonic() < until:
        load.one()
        time.sleep(min(gaps.expovariate(rate), max(0.0, until - time.monotonic())))


def recover(parts: Parts) -> None:
    """After the stream: VPN up, the primary and the daemon running (noting it if they were not)."""
    parts.gateway.up()
    if parts.primary.process is None:
        parts.errors.append("the primary was not running at the end (its restart failed); started again")
        parts.primary.start(timeout=60)
    process = parts.daemon.process
    if process is not None and process.poll() is not None:
        parts.errors.append(f"the daemon exited by itself (code {process.returncode}); started again")
        restart_daemon(parts.daemon)


def drain(parts: Parts, files: int) -> float | None:
    """Seconds until the inbox is empty and ``status --json`` shows nothing waiting; None on timeout."""
    started = time.monotonic()
    daemon = parts.daemon

    def empty() -> bool:
        if visible_files(daemon.inbox):
            return False
        snap = daemon.status()
        return snap.get("inbox") == 0 and not snap.get("held")

    try:
        wait_for(empty, 120 + 0.05 * files, "the inbox to drain")
    except AssertionError as exc:
        parts.errors.append(str(exc))
        return None
    return time.monotonic() - started


def observe(parts: Parts, checks: dict[str, Any], paths: list[str]) -> dict[str, Any]:
    """Event counts, files with other than one canonical event, and log lines about every failed check."""
    events = parts.daemon.events()
    names = Counter(str(e.get("event")) for e in events)
    per_file = Counter(str(e.get("file")) for e in events if e.get("event") in CANONICAL)
    needles = [d["file"] for d in checks["lost"]] + [d["infohash"] for d in checks["lost"]]
    for key in ("duplicates", "junk_sent", "good_failed", "missing_files"):
        needles += list(checks[key])
    needles = [n.rsplit("/", 1)[-1] for n in needles]
    return {
        "events": {name: names.get(name, 0) for name in EVENTS},
        "tracebacks": parts.daemon.output().count("Traceback"),
        "files_with_several_canonical_events": sorted(f for f, n in per_file.items() if n > 1),
        "files_without_canonical_event": sorted(p for p in paths if p not in per_file),
        "evidence": evidence(parts.daemon.output(), needles) if needles else [],
    }


def soak(rig: Rig, args: argparse.Namespace, log_copy: Path) -> dict[str, Any]:
    """Start everything, stream files and faults, drain, account. Stops all it started."""
    seconds = args.minutes * 60
    with ExitStack() as stack:
        started: list[Daemon] = []
        stack.callback(lambda: started and shutil.copyfile(started[0].log_path, log_copy))  # runs last
        gateway = Gateway().create()
        stack.callback(gateway.delete)
        primary, fallback = rig.qbt(stack, "primary"), rig.qbt(stack, "fallback")
        daemon = rig.daemon_for(
            stack,
            [
                instance("primary", primary.url, primary.password, requires_vpn=True),
                instance("fallback", fallback.url, fallback.password),
            ],
            probe_interval=PROBE,
            vpn={"gateway": gateway.address, "timeout": 0.3, "count": 1},
        )
        started.append(daemon)
        wait_for(lambda: [i["status"] for i in daemon.status()["instances"]] == ["OK", "OK"], 30, "both OK")
        t0 = time.monotonic()
        sampler = Sampler(daemon, t0)
        stack.callback(sampler.stop)
        sampler.take("start")
        sampler.start()
        parts = Parts(primary, fallback, gateway, daemon, Load(daemon.inbox, args.seed), sampler, t0)
        faults = Faults(parts, schedule(seconds))
        stack.callback(faults.stop)
        faults.start()
        print(f"== dropping files for {seconds:.0f} s; faults:", flush=True)
        stream(parts.load, t0 + seconds, args.rate, args.seed)
        faults.stop()
        recover(parts)
        ledger = parts.load.snapshot()
        print(f"== draining {len(visible_files(daemon.inbox))} waiting files ...", flush=True)
        drain_s = drain(parts, len(ledger))
        sampler.take("end")
        sampler.stop()
        wanted = sorted({h for item in ledger for h in (*item.hashes, *item.decoys)})
        per_instance = {"primary": listed(primary, wanted), "fallback": listed(fallback, wanted)}
        checks = account(
            ledger,
            daemon.inbox,
            daemon.sent,
            daemon.failed,
            per_instance["primary"] | per_instance["fallback"],
        )
        exit_code = daemon.stop()
        return {
            "seconds": seconds,
            "drain_s": drain_s,
            "daemon_exit_code": exit_code,
            "checks": checks,
            "torrents": {name: len(found) for name, found in per_instance.items()},
            "in_both_instances": len(per_instance["primary"] & per_instance["fallback"]),
            "in_both_infohashes": sorted(per_instance["primary"] & per_instance["fallback"]),
            "faults": parts.faults,
            "errors": parts.errors,
            "processes": processes(sampler.series),
            "series": sampler.series,
            **observe(parts, checks, [item.path for item in ledger]),
        }


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long files are dropped (default 10)")
    parser.add_argument("--rate", type=float, default=4.0, help="files a second on average, besides bursts")
    parser.add_argument("--seed", type=int, default=1, help="seed of the file mix and the gaps")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="folder for soak.json and the daemon's log"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="where the temporary folders go")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders (inbox, sent/, ...)")
    return parser.parse_args(argv)


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through every clean-up


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if os.geteuid() != 0:
        print("the soak needs root (network namespaces, the VPN gateway host)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    network = enter_private_network()
    args.out.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="magnetd-soak-", dir=args.workdir))
    try:
        meta = machine(root, network)
        print("\n".join(f"{key:>16}: {value}" for key, value in meta.items()), flush=True)
        data = soak(Rig(root), args, args.out / "soak-magnetd.log")
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    rows = table(data)
    data = {
        "meta": meta,
        "settings": vars(args) | {"out": str(args.out), "workdir": str(args.workdir)},
        **data,
    }
    data["table"] = [{"label": label, "value": value} for label, value in rows]
    data["failures"] = failures(data)
    print()
    print("\n".join(f"{label:<48} {value}" for label, value in rows))
    (args.out / "soak.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out / 'soak.json'} and {args.out / 'soak-magnetd.log'}")
    for failure in data["failures"]:
        print(f"FAIL {failure}", file=sys.stderr)
    return 1 if data["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
