"""The hold: files wait in the inbox because nothing can take them now, and who is told.

A hold starts when no eligible instance can take the due files and ends when
one takes them again. It is logged once (``files_held``, ``drain_started``) and
announced: ``holding``, ``held_too_long`` once per hold, and ``drained`` with
what went out once the inbox has nothing due any more.
"""

from __future__ import annotations

import time

from magnetd import logs
from magnetd.delivery.settler import Counters
from magnetd.intake.inbox import Inbox
from magnetd.model import MagnetOutcome
from magnetd.telemetry.announcer import Announcer

log = logs.get(__name__)


class Hold:
    """Whether files are held now; owned by the supervisor's thread."""

    def __init__(self, inbox: Inbox, counters: Counters, announcer: Announcer) -> None:
        self.inbox = inbox
        self.counters = counters
        self.announcer = announcer
        self.active = False
        self._drained_from: tuple[int, int] | None = None  # (files, magnets) counted when it ended

    def start(self, reason: str, instances: str) -> None:
        """Nothing can take the due files: keep them; told once per hold."""
        if not self.active:
            files = len(self.inbox)
            log.warning("files_held", files=files, reason=reason, instances=instances)
            self.announcer.holding(files, f"{reason} ({instances})")
            self._drained_from = None
        self.active = True

    def end(self) -> None:
        """An instance takes files again."""
        if self.active:
            log.info("drain_started", files=len(self.inbox))
            self._drained_from = (self._files(), self.counters.magnets[MagnetOutcome.ADDED])
        self.active = False

    def clear(self) -> None:
        """Nothing waits any more (the held files went elsewhere, or were removed)."""
        self.active = False

    def _anything_due(self) -> bool:
        due = self.inbox.next_due()
        return due is not None and due <= time.monotonic()

    def _files(self) -> int:
        """Files settled since the start (a partial one counts once)."""
        return sum(self.counters.files.values())

    def tell(self) -> None:
        """Called every tick: ``held_too_long`` while it lasts, ``drained`` once after it."""
        if self.active:
            oldest = self.inbox.oldest()
            if oldest is not None:
                self.announcer.still_holding(len(self.inbox), time.time() - oldest.first_seen_wall)
        elif self._drained_from is not None and not self._anything_due():
            files, magnets = self._drained_from
            self.announcer.drained(
                self._files() - files, self.counters.magnets[MagnetOutcome.ADDED] - magnets
            )
            self._drained_from = None
