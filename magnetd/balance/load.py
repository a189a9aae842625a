"""What magnetd knows of each instance's load: active downloads, free space, its own recent adds.

The prober writes the counts it reads from qBittorrent; the dispatcher notes every
add it plans. Both run on different threads, so every access holds one lock.
:func:`count_active` is the pure count of active downloads from ``torrents/info`` objects.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

RATE_WINDOW = 60.0
"""Seconds: ``max_adds_per_minute`` counts the adds of this sliding window."""
FREE_SPACE_EVERY = 60.0
"""Seconds between reads of the free space: ``sync/maindata`` costs seconds on a big instance."""
ADDS_MERGED_WITHIN = 0.1
"""Seconds: adds noted within this long of an entry's first one join it. The entry is timed by
its last add, so they leave the window no sooner (the rate limit never lets more through) and
a count of active downloads taken among them counts them all as still to come (``max_active``
errs on the safe side, by at most this long's adds). A drop of 30,000 files keeps at most ten
entries a second, not one per file."""
UNKNOWN_RETRY = 2.0
"""Seconds before the free space is read again after qBittorrent answered -1 (not measured yet:
4.5.2 answers -1 until its own disk check has run), doubling up to FREE_SPACE_EVERY."""

ALWAYS_ACTIVE = frozenset(
    {"downloading", "metaDL", "forcedMetaDL", "stalledDL", "forcedDL", "checkingDL", "allocating"}
)
"""States of an active download: incomplete, neither paused/stopped nor queued nor errored."""
ACTIVE_IF_INCOMPLETE = frozenset({"checkingResumeData", "moving"})
"""States that count as an active download only while the torrent is incomplete."""
ACTIVE_FILTERS = ("downloading", "checking")
"""``torrents/info`` filters whose union holds every active download (and paused/stopped and
queued ones, dropped by state). No single filter does; ``checking`` brings checkingResumeData.
But ``downloading`` includes pausedDL (stoppedDL in 5.x) and queuedDL: on an instance holding
10,000 paused downloads it is a full listing (a second of qBittorrent's CPU per probe)."""
ACTIVE_FILTERS_4X = ("active", "stalled_downloading", "checking")
"""The same union for qBittorrent 4.x, none of them listing paused or queued torrents: 4.x's
``active`` lists metaDL, downloading, forcedDL and moving unconditionally (and uploading seeds,
dropped by state). Not for 5.x: 5.3's ``active`` leaves out an idle metaDL, and no 5.x filter
both lists it and leaves out stopped downloads."""
FIVE_WEBAPI = (2, 10)
"""WebAPI versions from here on are qBittorrent 5.x (4.6.x, the last 4.x, is 2.9.x)."""


def active_filters(webapi: str) -> tuple[str, ...]:
    """The filters to count active downloads with, for WebAPI version ``webapi`` (e.g. ``2.8.19``).

    A filter name qBittorrent does not know lists everything, so unknown versions get the
    filters every version knows.
    """
    try:
        version = tuple(int(part) for part in webapi.split(".")[:2])
    except ValueError:
        return ACTIVE_FILTERS
    return ACTIVE_FILTERS_4X if (2, 0) <= version < FIVE_WEBAPI else ACTIVE_FILTERS


def count_active(torrents: Iterable[Mapping[str, Any]]) -> int:
    """How many of ``torrents`` (``torrents/info`` objects, counted once per hash) are active downloads."""
    seen: set[str] = set()
    for torrent in torrents:
        state = str(torrent.get("state", ""))
        incomplete = float(torrent.get("progress", 0.0)) < 1.0
        if state in ALWAYS_ACTIVE or (state in ACTIVE_IF_INCOMPLETE and incomplete):
            seen.add(str(torrent.get("hash", id(torrent))))
    return len(seen)


@dataclass(frozen=True, slots=True)
class Facts:
    """One instance's load at one moment, as the strategy reads it."""

    active: int = 0  # the last probe's count plus magnetd's adds since
    free: int | None = None  # bytes; None (or -1 from qBittorrent) when unknown
    recent: int = 0  # magnetd's adds in the last RATE_WINDOW seconds


@dataclass(slots=True)
class _Adds:
    """Magnets noted for adding from ``first`` to ``when`` (clock times, ``when`` the last)."""

    first: float
    when: float
    count: int


@dataclass
class _Record:
    active: int | None = None
    added: int = 0  # adds noted since the last count of active downloads
    free: int | None = None
    free_read: float | None = None  # clock time of the last free-space read
    free_unknown: int = 0  # -1 answers in a row
    adds: deque[_Adds] | None = None  # the rate window's adds, oldest first
    recent: int = 0  # the magnets in ``adds``: kept, not summed per question (asked per file)


class Loads:
    """The load facts of every instance; safe to share between the prober and the dispatcher."""

    def __init__(self, names: Iterable[str], clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._records = {name: _Record(adds=deque()) for name in names}

    def now(self) -> float:
        return self._clock()

    def set_active(self, name: str, count: int, counted_at: float) -> None:
        """The prober counted ``count`` active downloads; adds noted before ``counted_at`` are in it."""
        with self._lock:
            record = self._records[name]
            record.active = count
            record.added = sum(a.count for a in record.adds or () if a.when >= counted_at)

    def set_free(self, name: str, free: int) -> None:
        with self._lock:
            record = self._records[name]
            record.free = free if free >= 0 else None
            record.free_unknown = 0 if free >= 0 else record.free_unknown + 1
            record.free_read = self._clock()

    def free_due(self, name: str) -> bool:
        """Whether the free space should be read now: never read, read over a minute ago, or unknown
        (then again after 2, 4, 8, … seconds)."""
        with self._lock:
            record = self._records[name]
            read, unknown = record.free_read, record.free_unknown
        wait = min(FREE_SPACE_EVERY, UNKNOWN_RETRY * 2 ** (unknown - 1)) if unknown else FREE_SPACE_EVERY
        return read is None or self._clock() - read >= wait

    def note_adds(self, name: str, count: int) -> None:
        """magnetd is about to add ``count`` magnets to ``name``."""
        with self._lock:
            record = self._records[name]
            record.added += count
            record.recent += count
            now = self._clock()
            adds = _expired(record, now)  # also for an instance whose load nothing asks for
            if adds and now - adds[-1].first < ADDS_MERGED_WITHIN:
                adds[-1].when = now
                adds[-1].count += count
            else:
                adds.append(_Adds(now, now, count))

    def facts(self, name: str) -> Facts:
        """The instance's load now; asked for every candidate of every file, so O(1) but for expiry."""
        with self._lock:
            record = self._records[name]
            _expired(record, self._clock())
            return Facts(active=(record.active or 0) + record.added, free=record.free, recent=record.recent)


def _expired(record: _Record, now: float) -> deque[_Adds]:
    """``record``'s rate window without the adds that left it by ``now`` (their count taken off)."""
    adds = record.adds
    assert adds is not None
    while adds and now - adds[0].when >= RATE_WINDOW:
        record.recent -= adds.popleft().count
    return adds
