"""The pipeline: one pass over the due files, batch by batch, with several batches in flight.

Up to :data:`IN_FLIGHT` batches are with the courier at once: while qBittorrent
adds and lists one, the loop reads the next and moves the files of those
already verified, in order. Every flight is landed before the pass returns.
Runs on the supervisor's thread, which owns every file move.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

from magnetd import logs
from magnetd.delivery.dispatch import Flight, Job
from magnetd.intake.inbox import Inbox
from magnetd.service.hold import Hold
from magnetd.service.parts import Parts

IN_FLIGHT = 4  # batches with the courier at once, while the loop reads the next and settles others
BATCH_BYTES = 8 * 1024 * 1024  # file data per batch: at most ~40 MiB of it held at once

log = logs.get(__name__)


class Pipeline:
    """One drain pass for the supervisor."""

    def __init__(
        self,
        parts: Parts,
        inbox: Inbox,
        hold: Hold,
        stopping: Callable[[], bool],
        held: Callable[[], None],
        landed: Callable[[], None],
    ) -> None:
        self.parts = parts
        self.inbox = inbox
        self.hold = hold
        self.stopping = stopping  # True once the daemon is asked to stop: no new batch
        self.held = held  # no instance took a batch: hold the inbox
        self.landed = landed  # after each landing (the watchdog, the status snapshot)
        self.flights: deque[Flight] = deque()

    def run(self) -> None:
        """Send every due file, oldest first, while an instance takes them."""
        try:
            self._launch_due()
        finally:
            while self.flights:
                self._land(self.flights.popleft())
            self.parts.spool.flush()  # files that failed while being read

    def _launch_due(self) -> None:
        dispatcher, batch_size = self.parts.dispatcher, self.parts.config.batch_size
        batch: list[Job] = []
        entries = size = 0
        for waiting in self.inbox.due():
            if self.stopping() or self.hold.active:
                return
            job = dispatcher.load(waiting)
            if job is not None and job.item.links:  # links to .torrent files: fetched first
                job = self.parts.fetches.resolve(job)
            if job is None:
                continue
            batch.append(job)
            entries += len(job.item.entries)
            size += len(job.data)
            if entries >= batch_size or size >= BATCH_BYTES:
                self._launch(batch)
                batch, entries, size = [], 0, 0
        if batch and not self.hold.active:
            self._launch(batch)

    def _launch(self, batch: list[Job]) -> None:
        """Hand ``batch`` over, then land every flight that is done or one too many."""
        try:
            routed = self.parts.dispatcher.route(batch)
        except Exception as exc:
            self._batch_error(batch, exc)
            return
        if routed.held:
            self.held()
            return
        self.flights.extend(routed.flights)
        most = IN_FLIGHT * len(self.parts.config.instances)  # per instance: each has its own courier
        while self.flights and (len(self.flights) >= most or self.flights[0].verdict.done()):
            self._land(self.flights.popleft())

    def _land(self, flight: Flight) -> None:
        try:
            landed = self.parts.dispatcher.land(flight)
        except Exception as exc:
            self._batch_error(flight.jobs, exc)
            landed = True
        self.parts.spool.flush()
        if not landed:
            self.held()
        self.landed()

    def _batch_error(self, batch: Sequence[Job], exc: Exception) -> None:
        log.error("batch_error", error=repr(exc), files=len(batch), exc_info=exc)
        for job in batch:
            if job.waiting.path.exists():
                self.parts.settler.retry_or_fail(job.waiting, job.rel, "internal_error", repr(exc))
