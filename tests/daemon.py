"""Run the real ``magnetd`` daemon as a subprocess for integration tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")
LOG_TAIL = 150
"""Log lines a failed test shows of its daemon."""


def wait_for(check: Callable[[], T], timeout: float = 30.0, what: str = "condition") -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def drop(folder: Path, name: str, content: str | bytes) -> Path:
    """Write a file the way a careful producer does: a hidden temp name, then a rename."""
    folder.mkdir(parents=True, exist_ok=True)
    data = content.encode("utf-8") if isinstance(content, str) else content
    temp = folder / f".{name}.tmp"
    temp.write_bytes(data)
    target = folder / name
    os.rename(temp, target)
    return target


def instance(name: str, url: str, password: str, **extra: Any) -> dict[str, Any]:
    """One ``instances:`` entry reading its password from ``$MAGNETD_TEST_PW_<NAME>``."""
    return {
        "name": name,
        "url": url,
        "username": "admin",
        "password_env": f"MAGNETD_TEST_PW_{name.upper()}",
        "_password": password,
        **extra,
    }


class Daemon:
    """A ``magnetd run`` subprocess with its own config and folders under ``root``."""

    def __init__(self, root: Path, instances: Sequence[dict[str, Any]], **settings: Any) -> None:
        self.root = root
        self.inbox = root / "inbox"
        self.sent = root / "sent"
        self.failed = root / "failed"
        self.state = root / "state"
        self.config_path = root / "magnetd.yaml"
        self.log_path = root / "magnetd.log"
        self.env = dict(os.environ)
        entries = []
        for inst in instances:
            inst = dict(inst)
            if "_password" in inst:  # else the entry names its own source (password_file, ...)
                self.env[inst["password_env"]] = inst.pop("_password")
            entries.append(inst)
        config: dict[str, Any] = {
            "folders": {"inbox": "inbox", "sent": "sent", "failed": "failed", "state": "state"},
            "probe_interval": 0.5,
            "instances": entries,
            "watch": {"rescan_interval": 5},
        }
        config.update(settings)
        root.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
        self.process: subprocess.Popen[bytes] | None = None
        self.start_args = ["--log-target", "json"]

    def command(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run another ``magnetd`` sub-command against this config."""
        return subprocess.run(
            [sys.executable, "-m", "magnetd", *args, "--config", str(self.config_path)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def start(self, wait: bool = True) -> Daemon:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "magnetd",
                "run",
                "--config",
                str(self.config_path),
                *self.start_args,
            ],
            env=self.env,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        if wait:
            wait_for(self.started, 30, "the daemon to start")
        return self

    def __enter__(self) -> Daemon:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        """Never leave a daemon behind, whatever the test did; on a failure, show its last log lines.

        pytest prints a failed test's captured output: the daemon's own account of what it
        did is what tells a flaky step apart from a broken one.
        """
        if self.alive():
            self.stop()
        if kind is not None and kind is not KeyboardInterrupt:
            tail = self.output().splitlines()[-LOG_TAIL:]
            print(f"--- the daemon's last {len(tail)} log lines ({self.log_path}) ---", *tail, sep="\n")

    def started(self) -> bool:
        """True once this process logged ``daemon_started`` or wrote its status snapshot."""
        if self.events("daemon_started"):
            return True
        try:
            snapshot = json.loads((self.state / "status.json").read_text())
        except (OSError, ValueError):
            return False
        return self.process is not None and snapshot.get("pid") == self.process.pid

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        return code

    def kill(self) -> None:
        """SIGKILL at once, like a crash or the OOM killer."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """The daemon's JSON log events so far (optionally only those named ``name``)."""
        found = []
        for line in self.output().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and (name is None or event.get("event") == name):
                found.append(event)
        return found

    def endpoint(self) -> str:
        """The status endpoint's base URL, once it listens (``http.listen`` may give port 0)."""
        listening = wait_for(lambda: self.events("http_listening"), 10, "the endpoint to listen")
        return f"http://127.0.0.1:{listening[-1]['port']}"

    def status(self) -> dict[str, Any]:
        result = self.command("status", "--json")
        data: dict[str, Any] = json.loads(result.stdout)
        return data

    def files(self, folder: Path) -> list[str]:
        """Relative paths of the files below ``folder``, sorted; hidden temporary files left out."""
        return sorted(
            str(p.relative_to(folder))
            for p in folder.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        )
