"""Notices: the announcer and the postman built from the ``notify`` settings.

The announcer outlives config reloads (what was told, what waits, the hold);
the postman is rebuilt only when the targets change.
"""

from __future__ import annotations

from magnetd.telemetry.announcer import Announcer
from magnetd.telemetry.events import DEFAULT_EVENTS, Event, EventName
from magnetd.telemetry.postman import Postman
from magnetd.telemetry.settings import Notify
from magnetd.telemetry.targets import build

CLOSE_TIMEOUT = 5.0
"""Seconds a stopping daemon gives queued notifications (a reload gives old targets 1 s)."""


def wanted(notify: Notify) -> frozenset[EventName]:
    """Every event some target gets."""
    found: set[EventName] = set()
    for spec in notify.targets:
        found |= spec.events if spec.events is not None else DEFAULT_EVENTS
    return frozenset(found)


def postman(notify: Notify) -> Postman | None:
    return Postman([build(spec) for spec in notify.targets]) if notify.targets else None


class Notices:
    """What the daemon tells people and programs, for one run of it."""

    def __init__(self, notify: Notify) -> None:
        self.notify = notify
        self.postman = postman(notify)
        self.announcer = Announcer(
            self._post,
            wanted(notify),
            digest_seconds=notify.digest_seconds,
            held_after=notify.held_after,
            flap_window=notify.flap_seconds,
        )

    def _post(self, event: Event) -> None:
        courier = self.postman
        if courier is not None:
            courier.post(event)

    def counts(self) -> dict[str, dict[str, int]]:
        """Deliveries per target and result (for metrics)."""
        return self.postman.counts() if self.postman is not None else {}

    def reconfigure(self, notify: Notify) -> None:
        """Take a reloaded config's settings; new targets only if they changed."""
        if notify == self.notify:
            return
        if notify.targets != self.notify.targets:
            old, self.postman = self.postman, postman(notify)
            if old is not None:
                old.close(timeout=1.0)
        self.notify = notify
        self.announcer.configure(
            wanted(notify), notify.digest_seconds, notify.held_after, notify.flap_seconds
        )

    def close(self) -> None:
        """Send what waits (digests, folded changes), then give deliveries a few seconds."""
        self.announcer.tick(now=float("inf"))
        if self.postman is not None:
            self.postman.close(timeout=CLOSE_TIMEOUT)
