"""VPN reconnect: run ``vpn.reconnect_command`` when the gate goes down, and hold VPN-bound work a while.

When the gate goes down the command starts at once, on a thread of its own, and
again at most once per ``reconnect_wait`` while the gate stays down. Work that
would go to a VPN-bound instance waits for the gate until ``reconnect_wait``
after the outage's *first* run (running it again does not extend the wait);
after that it fails over as it would without a command.
"""

from __future__ import annotations

import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Sequence

from magnetd import logs
from magnetd.model import GateStatus

MIN_TIMEOUT = 30.0
"""Seconds a reconnect command may run at least (``docker restart gluetun`` takes about 10)."""

log = logs.get("magnetd.reconnect")

Report = Callable[[int | None, float, str], None]
"""Told when a run ended: exit code (None: could not start, or timed out), seconds, detail."""


class Reconnector:
    """Runs the reconnect command for one gate; thread-safe."""

    def __init__(
        self,
        command: Sequence[str],
        wait: float,
        report: Report = lambda code, seconds, detail: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.command = tuple(command)
        self.wait = wait
        self._report = report
        self._clock = clock
        self._lock = threading.Lock()
        self._outage_started: float | None = None  # the first run of this outage
        self._last_run = float("-inf")
        self._running: threading.Thread | None = None

    def checked(self, status: GateStatus) -> None:
        """The gate was checked (every round): run the command if it is down and may run again.

        The prober calls this after the round's instance probes, so that when the gate is
        back the outage ends only once its VPN-bound instances were seen OK: files never
        slip to a fallback in between.
        """
        now = self._clock()
        with self._lock:
            if status == GateStatus.UP:
                self._outage_started = None
                return
            if status == GateStatus.PING_NOT_PERMITTED:
                return  # the gate cannot be checked at all: reconnecting would not help
            if self._running is not None and self._running.is_alive():
                return
            if now - self._last_run < self.wait:
                return
            if self._outage_started is None:
                self._outage_started = now
            self._last_run = now
            self._running = threading.Thread(target=self._run, name="magnetd-reconnect", daemon=True)
            self._running.start()

    def holding(self) -> bool:
        """Whether VPN-bound work should still wait for the gate (and not fail over yet)."""
        deadline = self.deadline()
        return deadline is not None and self._clock() < deadline

    def deadline(self) -> float | None:
        """When the current outage's wait ends (monotonic), or None outside an outage."""
        with self._lock:
            return None if self._outage_started is None else self._outage_started + self.wait

    def join(self, timeout: float) -> None:
        """Wait for a running command (tests, shutdown)."""
        running = self._running
        if running is not None:
            running.join(timeout)

    def _run(self) -> None:
        started = time.monotonic()
        text = shlex.join(self.command)
        log.warning("vpn_reconnect_started", command=text)
        try:
            done = subprocess.run(
                self.command,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=max(MIN_TIMEOUT, self.wait),
                check=False,
            )
        except subprocess.TimeoutExpired:
            self._ended(None, started, f"{text} did not finish within {max(MIN_TIMEOUT, self.wait):g} s")
        except OSError as exc:
            self._ended(None, started, f"{text} could not start: {exc.strerror or exc}")
        else:
            tail = " ".join(done.stderr.decode("utf-8", "replace").split())[-200:]
            detail = f"{text} exited with {done.returncode}" + (f": {tail}" if tail else "")
            self._ended(done.returncode, started, detail)

    def _ended(self, code: int | None, started: float, detail: str) -> None:
        seconds = time.monotonic() - started
        level = log.info if code == 0 else log.warning
        level("vpn_reconnect", exit_code=code, seconds=round(seconds, 2), detail=detail)
        self._report(code, seconds, detail)
