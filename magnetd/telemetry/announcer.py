"""The announcer: turns what happens into events, once per state change, flaps and bursts folded.

Every call is cheap and never blocks: it runs on the prober's thread and on
the loop that sends, and only hands finished events to ``post`` (which queues
them for delivery elsewhere). Two things are held back on purpose:

- a subject (the VPN gate, an instance, the hold) that changes again within
  ``flap_window`` of its last announcement is not announced at once; when the
  window ends, its state then is announced if it differs from the last one
  told, with how often it flapped. A gateway going down and up ten times in a
  minute is two messages, not twenty, and the last one is always the truth;
- ``file_failed`` and ``file_sent`` are digests: the first outcome opens a
  window of ``digest_seconds``, and one message lists every file of it.

Timers have no thread of their own: the owner calls :meth:`Announcer.tick`
by :meth:`Announcer.next_due`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from magnetd.model import GateStatus, InstanceStatus
from magnetd.telemetry.events import Event, EventName

FLAP_WINDOW = 60.0
"""Seconds after an announcement during which further changes of that subject are folded."""
DIGEST_LISTED = 50
"""Files named in a digest's message; ``data.files`` holds up to ``DIGEST_KEPT``."""
DIGEST_KEPT = 1000

_UP, _DOWN = "up", "down"
_AUTH = frozenset({InstanceStatus.AUTH_FAILED, InstanceStatus.BANNED})


@dataclass
class _Subject:
    """What was last told about one subject, and what waits for its window to end."""

    told: str | None = None
    told_at: float = float("-inf")
    pending: Event | None = None
    pending_state: str | None = None
    flaps: int = 0


@dataclass
class _Digest:
    due: float
    files: list[dict[str, Any]] = field(default_factory=list)
    count: int = 0


class Announcer:
    """Raises events for state changes, holds and file outcomes; thread-safe."""

    def __init__(
        self,
        post: Callable[[Event], None],
        wanted: Iterable[EventName],
        *,
        digest_seconds: float = 30.0,
        held_after: float = 600.0,
        flap_window: float = FLAP_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._post = post
        self.wanted = frozenset(wanted)
        self.digest_seconds = digest_seconds
        self.held_after = held_after
        self.flap_window = flap_window
        self._clock = clock
        self._lock = threading.Lock()
        self._subjects: dict[str, _Subject] = {}
        self._digests: dict[EventName, _Digest] = {}
        self._held_since: float | None = None
        self._held_told = False

    def configure(
        self, wanted: Iterable[EventName], digest_seconds: float, held_after: float, flap_window: float
    ) -> None:
        """New settings after a reload; what was told and what waits are kept."""
        with self._lock:
            self.wanted = frozenset(wanted)
            self.digest_seconds, self.held_after, self.flap_window = digest_seconds, held_after, flap_window

    # -- state changes --------------------------------------------------------------------

    def gate_changed(self, gate: str, status: str, detail: str) -> None:
        """The VPN gate ``gate`` has a new status."""
        if status == GateStatus.UP:
            self._change(f"gate:{gate}", _UP, EventName.VPN_UP, f"VPN {gate} is up", detail, gate=gate)
        else:
            title = f"VPN {gate} is down"
            self._change(f"gate:{gate}", _DOWN, EventName.VPN_DOWN, title, detail, gate=gate, status=status)

    def instance_changed(self, name: str, status: str, detail: str) -> None:
        """Instance ``name`` has a new status; VPN_DOWN is the gate's news, not the instance's."""
        if status == InstanceStatus.VPN_DOWN:
            return
        key, data = f"instance:{name}", {"instance": name, "status": status}
        if status == InstanceStatus.OK:
            self._change(key, _UP, EventName.INSTANCE_UP, f"{name} is up", detail or "OK", **data)
        elif status in _AUTH:
            self._change(key, _DOWN, EventName.AUTH_FAILED, f"{name}: login refused", detail, **data)
        else:
            self._change(key, _DOWN, EventName.INSTANCE_DOWN, f"{name} is down ({status})", detail, **data)

    def holding(self, files: int, reason: str) -> None:
        """Files started to wait: nothing eligible can take them."""
        with self._lock:
            if self._held_since is None:
                self._held_since, self._held_told = self._clock(), False
        message = f"{files} file(s) wait in the inbox: {reason}"
        self._change("hold", _DOWN, EventName.HOLDING, "magnetd is holding files", message, files=files)

    def still_holding(self, files: int, oldest_age: float) -> None:
        """Called while files are held: ``held_too_long`` once the oldest passed ``held_after``."""
        with self._lock:
            if self._held_since is None or self._held_told or oldest_age < self.held_after:
                return
            self._held_told = True
        message = f"{files} file(s) wait; the oldest for {oldest_age:.0f} s (over {self.held_after:g} s)"
        data = {"files": files, "oldest_seconds": round(oldest_age), "held_after": self.held_after}
        self._emit(Event(EventName.HELD_TOO_LONG, "magnetd: files held too long", message, data))

    def drained(self, files: int, magnets: int) -> None:
        """A hold ended: ``files`` files (``magnets`` magnets) went out."""
        with self._lock:
            since, self._held_since = self._held_since, None
        waited = round(self._clock() - since) if since is not None else 0
        message = f"{files} file(s), {magnets} magnet(s) went out after waiting up to {waited} s"
        data = {"files": files, "magnets": magnets, "waited_seconds": waited}
        self._change("hold", _UP, EventName.DRAINED, "magnetd drained its inbox", message, **data)

    def reconnect_ran(self, gate: str, command: str, code: int | None, seconds: float, detail: str) -> None:
        """``vpn.reconnect_command`` ran (``code`` None: it could not start or timed out)."""
        data = {"gate": gate, "command": command, "exit_code": code, "seconds": round(seconds, 1)}
        title = f"VPN {gate}: reconnect command ran" + ("" if code == 0 else " and failed")
        self._emit(Event(EventName.VPN_RECONNECT, title, detail, data))

    # -- file outcomes: digests -----------------------------------------------------------

    def file_outcome(self, name: EventName, file: str, reason: str | None, instance: str | None) -> None:
        """One ``file_failed`` or ``file_sent``; cheap when no target wants it."""
        if name not in self.wanted:
            return
        with self._lock:
            digest = self._digests.get(name)
            if digest is None:
                digest = self._digests[name] = _Digest(self._clock() + self.digest_seconds)
            digest.count += 1
            if len(digest.files) < DIGEST_KEPT:
                entry = {"file": file, "reason": reason, "instance": instance}
                digest.files.append({k: v for k, v in entry.items() if v is not None})

    # -- timers ---------------------------------------------------------------------------

    def next_due(self) -> float | None:
        """When :meth:`tick` has something to do (monotonic), or None."""
        with self._lock:
            dues = [d.due for d in self._digests.values()]
            dues += [s.told_at + self.flap_window for s in self._subjects.values() if s.pending]
        return min(dues, default=None)

    def tick(self, now: float | None = None) -> None:
        """Send digests whose window ended, and folded changes whose flap window ended.

        ``now=inf`` sends everything that waits (at shutdown).
        """
        now = self._clock() if now is None else now
        ready: list[Event] = []
        with self._lock:
            for name, digest in list(self._digests.items()):
                if digest.due <= now:
                    del self._digests[name]
                    ready.append(_digest_event(name, digest))
            for subject in self._subjects.values():
                if subject.pending and subject.told_at + self.flap_window <= now:
                    ready.append(self._release(subject, now))
        for event in ready:
            self._emit(event)

    # -- internals ------------------------------------------------------------------------

    def _change(self, key: str, state: str, name: EventName, title: str, message: str, **data: Any) -> None:
        event = Event(name, title, message, data)
        now = self._clock()
        with self._lock:
            subject = self._subjects.setdefault(key, _Subject())
            if subject.told is None and state == _UP:
                subject.told = _UP  # the first news of a subject being fine is no news
                return
            if state == subject.told:
                if subject.pending is not None:  # flapped back before its window ended
                    subject.pending = subject.pending_state = None
                    subject.flaps += 1
                return
            if now - subject.told_at < self.flap_window:
                subject.pending, subject.pending_state = event, state
                subject.flaps += 1
                return
            subject.told, subject.told_at, subject.flaps = state, now, 0
        self._emit(event)

    def _release(self, subject: _Subject, now: float) -> Event:
        """The folded change of ``subject``, with how often it flapped (lock held)."""
        event, flaps = subject.pending, subject.flaps
        assert event is not None
        subject.told, subject.told_at = subject.pending_state, now
        subject.pending = subject.pending_state = None
        subject.flaps = 0
        note = f" (changed {flaps} times in the last {self.flap_window:.0f} s)"
        return Event(event.name, event.title, event.message + note, {**event.data, "flaps": flaps})

    def _emit(self, event: Event) -> None:
        if event.name in self.wanted:
            self._post(event)


def _digest_event(name: EventName, digest: _Digest) -> Event:
    failed = name == EventName.FILE_FAILED
    lines = [f"{f['file']}: {f['reason']}" if f.get("reason") else f["file"] for f in digest.files]
    listed = "\n".join(lines[:DIGEST_LISTED])
    if digest.count > DIGEST_LISTED:
        listed += f"\n… and {digest.count - DIGEST_LISTED} more"
    title = f"magnetd: {digest.count} file(s) {'failed' if failed else 'sent'}"
    return Event(name, title, listed, {"count": digest.count, "files": digest.files})
