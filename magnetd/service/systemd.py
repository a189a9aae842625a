"""sd_notify in a few lines: a datagram to ``$NOTIFY_SOCKET``; silent outside systemd, never raises.

``systemd-python``'s ``daemon.notify`` is used where it is installed (the
``systemd`` extra); the standard-library datagram is the fallback.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import Any

from magnetd import logs, optional

_daemon = optional.load("systemd.daemon")  # the `systemd` extra; without it, the datagram below
_native_notify: Callable[..., Any] | None = _daemon.notify if _daemon is not None else None
log = logs.get(__name__)


class Notifier:
    """Sends READY/STATUS/WATCHDOG/RELOADING/STOPPING to systemd when it listens."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = dict(os.environ if environ is None else environ)
        self._native = _native_notify if environ is None else None  # it reads os.environ itself
        address = env.get("NOTIFY_SOCKET", "")
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self.watchdog_interval = _watchdog_interval(env)
        self._next_watchdog = 0.0

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, *fields: str) -> bool:
        """Send ``fields`` (``KEY=value``) as one message; False when it could not be sent."""
        if not self.address:
            return False
        if self._native is not None:
            try:
                return bool(self._native("\n".join(fields)))
            except Exception as exc:  # logged once: the datagram below does the job from now on
                self._native = None
                log.exception("sd_notify_failed", error=repr(exc), action="using the plain socket")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self.address)
                sock.sendall("\n".join(fields).encode("utf-8"))
        except OSError:
            return False
        return True

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def reloading(self) -> None:
        if not self.address:
            return
        usec = time.monotonic_ns() // 1000  # CLOCK_MONOTONIC on Linux, as systemd expects
        self.send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def watchdog(self, now: float) -> None:
        """Pet the watchdog if half its interval has passed since the last time."""
        if self.watchdog_interval is None or now < self._next_watchdog:
            return
        self._next_watchdog = now + self.watchdog_interval / 2
        self.send("WATCHDOG=1")

    def next_watchdog(self) -> float | None:
        """When :meth:`watchdog` next wants to run (monotonic), or None."""
        return None if self.watchdog_interval is None else self._next_watchdog


def _watchdog_interval(env: dict[str, str]) -> float | None:
    """Seconds of ``$WATCHDOG_USEC``, if it is meant for this process."""
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID")
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None
    return usec / 1_000_000
