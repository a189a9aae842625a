"""The pipeline: one pass over the due files, batch by batch, with many batches in flight.

Reading comes first: files that arrive during the pass join it, and a batch
is landed (its files moved) only once its verdict is there and no file waits
to be read, or when too much is in flight, so that a large drop reaches qBittorrent as fast as
the files can be read while the couriers verify behind. Flights are landed
in order, and every one is landed before the pass returns. Runs on the
supervisor's thread, which owns every file move.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from magnetd import logs
from magnetd.config import Config
from magnetd.delivery.dispatch import Flight, Job
from magnetd.intake.inbox import Inbox, Waiting
from magnetd.service.hold import Hold
from magnetd.service.parts import Parts

IN_FLIGHT_BATCHES = 64
"""Batches handed over and not landed yet, per instance: enough for 30,000 files in batches of
1,000 with room for the smaller batches a drop still arriving makes."""
IN_FLIGHT_ENTRIES = 40_000
"""Entries handed over and not landed yet, in all: what is held in memory for them (~1 KiB each)
bounds it. Past it, the oldest flight is landed before another is handed over."""
COALESCE = 0.005
"""Seconds a batch waits for more files while a drop is still arriving: whole batches mean fewer
requests. Never for the first file of a pass: a single drop goes at once. Longer than the
inotify reader's pause between two hand-overs (``BURST_PAUSE_MS``, 2 ms), which would
otherwise end a batch at every pause: a 10,000-file drop went out in 14 batches (one of a
single file), now in 11."""
WAIT = 0.1
"""Seconds the pass waits at a time for new files or a verdict while the oldest flight has none:
``ready`` (each verdict) ends the wait at once."""
BATCH_BYTES = 8 * 1024 * 1024
"""File data per batch: .torrent files are large, so a batch of them is cut short."""
_PASSES = itertools.count(1)
YOUNG_EVERY = 64
"""Landings between two collections of the young generations while a pass keeps automatic
garbage collection off (see :func:`collection_paused`)."""

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
        landing: Callable[[], None],
        arrivals: Callable[[float], list[Waiting]] = lambda wait: [],
        keepalive: Callable[[], None] = lambda: None,
        ready: Callable[[], None] = lambda: None,
    ) -> None:
        self.parts = parts
        self.inbox = inbox
        self.hold = hold
        self.stopping = stopping  # True once the daemon is asked to stop: no new batch
        self.held = held  # no instance took a batch: hold the inbox
        self.landing = landing  # before each landing: the watchdog, and the status snapshot (a change
        # of status that routed the flight, e.g. a gate found down, shows before its files move)
        self.arrivals = arrivals  # files that arrived since (waiting up to so many seconds): this pass's
        self.keepalive = keepalive  # the systemd watchdog, while a slow instance keeps a verdict
        self.ready = ready  # called on the courier when a verdict comes: ends a wait for arrivals
        self.flights: deque[Flight] = deque()
        self.number = next(_PASSES)  # marks the files handed over in this pass: not loaded twice
        self.entries = 0  # entries in flights not landed yet
        self.landings = 0

    def run(self) -> None:
        """Send every due file, oldest first, while an instance takes them."""
        with collection_paused():
            try:
                self._launch_due()
            finally:
                while self.flights:
                    self._land(self.flights.popleft())
                self.parts.spool.flush()  # files that failed while being read

    def _launch_due(self) -> None:
        """Load due files into batches; files that arrive meanwhile join the pass.

        New files come before landing: while the oldest flight has no verdict yet,
        the pass waits for arrivals rather than for it. When nothing new comes, the
        batch being filled goes at once (a single drop waits for nothing, a drop
        still arriving gets a moment to fill it), and flights land in order.
        """
        batch = _Batch()
        fresh = self.inbox.due()
        arriving = False  # files came during this pass: a drop is still being written in
        while True:
            for waiting in fresh:
                if self.stopping() or self.hold.active:
                    return
                loaded = waiting.handed != self.number and self._load(waiting, batch)
                if loaded and batch.full(self.parts.config):
                    self._launch(batch.jobs, land_done=False)  # reading first: landing waits
                    batch = _Batch()
            if fresh := self.arrivals(COALESCE if arriving and batch.jobs else 0.0):
                arriving = True
                continue
            if batch.jobs and not self.hold.active:
                self._launch(batch.jobs, land_done=True)
                batch = _Batch()
            if not self.flights or self.stopping() or self.hold.active:
                return
            if self.flights[0].verdict.done():
                self._land(self.flights.popleft())
            else:
                self.keepalive()  # waiting for a slow instance is not a hung loop
            fresh = self.arrivals(0.0 if self.flights and self.flights[0].verdict.done() else WAIT)

    def _load(self, waiting: Waiting, batch: _Batch) -> bool:
        """Read one file into ``batch``; False if it was settled or put off instead."""
        job = self.parts.dispatcher.load(waiting)
        if job is not None and job.item.links:  # links to .torrent files: fetched first
            job = self.parts.fetches.resolve(job)
        if job is None:
            return False
        waiting.handed = self.number
        batch.add(job)
        return True

    def _launch(self, batch: list[Job], land_done: bool) -> None:
        """Hand ``batch`` over, then land the flights that are too many (and those done, if
        ``land_done``: not while files wait to be read, whose adds would wait for the moves)."""
        try:
            routed = self.parts.dispatcher.route(batch)
        except Exception as exc:
            self._batch_error(batch, exc)
            return
        if routed.held:
            self.held()
            return
        self.flights.extend(routed.flights)
        for flight in routed.flights:
            flight.verdict.add_done_callback(lambda _: self.ready())
        self.entries += sum(len(flight.pairs) for flight in routed.flights)
        most = IN_FLIGHT_BATCHES * len(self.parts.config.instances)  # each instance has its own courier
        while self.flights and (
            (land_done and self.flights[0].verdict.done())
            or len(self.flights) > most
            or self.entries > IN_FLIGHT_ENTRIES
        ):
            self._land(self.flights.popleft())

    def _land(self, flight: Flight) -> None:
        self.entries -= len(flight.pairs)
        self.landing()
        try:
            landed = self.parts.dispatcher.land(flight)
        except Exception as exc:
            self._batch_error(flight.jobs, exc)
            landed = True
        self.parts.spool.flush()
        if not landed:
            self.held()
        self.landings += 1
        if self.landings % YOUNG_EVERY == 0:
            gc.collect(1)  # a pass fed for hours still frees the short-lived cycles (exceptions)

    def _batch_error(self, batch: Sequence[Job], exc: Exception) -> None:
        log.error("batch_error", error=repr(exc), files=len(batch), exc_info=exc)
        for job in batch:
            if job.waiting.path.exists():
                self.parts.settler.retry_or_fail(job.waiting, job.rel, "internal_error", repr(exc))


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """Automatic garbage collection off for the block, on again after it (if it was on).

    A large drop makes a few records per file, held until its batch lands, and none
    of them in a reference cycle. Each time the heap had grown by a quarter, the
    collector went through all of them to free nothing: at 30,000 files that was
    about 0.6 s of the owner thread in pauses of up to 0.1 s.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass
class _Batch:
    """Jobs gathered for one hand-over."""

    jobs: list[Job] = field(default_factory=list)
    entries: int = 0
    size: int = 0

    def add(self, job: Job) -> None:
        self.jobs.append(job)
        self.entries += len(job.item.entries)
        self.size += job.size

    def full(self, config: Config) -> bool:
        return self.entries >= config.batch_size or self.size >= BATCH_BYTES
