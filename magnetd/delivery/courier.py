"""Carry magnets to one instance and bring back what it has: add, then verify by id.

:func:`push` is the whole exchange for one batch. It touches no file, so it can
run on the courier thread while the thread that owns the inbox reads the next
batch and moves the files of the previous one. :class:`Courier` is that thread
(or, for tests and one-shot use, no thread at all).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from magnetd.delivery.qbittorrent import ClientApi, ItemRejected
from magnetd.model import AddOptions, Entry

VERIFY_DELAYS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.8)
"""Waits before each verification look, ≈ 1.6 s in all. qBittorrent lists a new magnet within
milliseconds, so the first looks come fast; a busy instance (saving resume data, thousands
of adds queued) gets the later ones. What is still missing then is tried again as a file."""
REFUSED = "qBittorrent refused it (not added, not already present)"

T = TypeVar("T")


@dataclass
class Verdict:
    """What one instance did with a batch, by torrent id."""

    instance: str
    present: set[str] = field(default_factory=set)
    already: set[str] = field(default_factory=set)  # listed before magnetd added them: duplicates
    refused: dict[str, str] = field(default_factory=dict)  # id -> detail
    add_seconds: float = 0.0  # time spent in torrents/add requests
    verify_seconds: float = 0.0  # time spent verifying, waits included


def push(
    client: ClientApi,
    instance: str,
    pairs: Sequence[tuple[Entry, AddOptions]],
    batch_size: int,
    sleep: Callable[[float], None] = time.sleep,
) -> Verdict:
    """Add ``pairs`` (entry, options) to one instance and verify them; InstanceError passes up.

    Magnets go in as few ``torrents/add`` requests as their options allow (at most
    ``batch_size`` each), each ``.torrent`` in its own request. What the instance lists
    already is not sent again, and comes back in ``already``: one ``torrents/info`` call,
    cheap while few are there (qBittorrent's cost is per torrent it returns).
    """
    verdict = Verdict(instance)
    started = time.monotonic()
    verdict.already = client.present({entry.torrent_id for entry, _ in pairs})
    groups: dict[AddOptions, list[Entry]] = defaultdict(list)
    torrents: list[tuple[Entry, AddOptions]] = []
    for entry, options in pairs:
        if entry.torrent_id in verdict.already:
            continue
        if entry.magnet is not None:
            groups[options].append(entry)
        else:
            torrents.append((entry, options))
    refusable: list[str] = []  # ids from requests qBittorrent answered with "nothing added"
    accepted = False
    for options, entries in groups.items():
        for start in range(0, len(entries), batch_size):
            chunk = entries[start : start + batch_size]
            answer = client.add_magnets([e.magnet.uri for e in chunk if e.magnet], options)
            accepted |= answer.accepted
            verdict.present.update(answer.added_ids)
            if not answer.accepted:
                refusable.extend(e.torrent_id for e in chunk)
    for entry, options in torrents:
        try:
            answer = client.add_torrent(f"{entry.torrent_id}.torrent", entry.torrent or b"", options)
        except ItemRejected as exc:
            verdict.refused[entry.torrent_id] = exc.detail
            continue
        accepted |= answer.accepted
        verdict.present.update(answer.added_ids)
        if not answer.accepted:
            refusable.append(entry.torrent_id)
    verdict.present |= verdict.already
    wanted = {entry.torrent_id for entry, _ in pairs} - set(verdict.refused)
    added = time.monotonic()
    verdict.present |= verify(client, wanted - verdict.present, accepted, sleep)
    verdict.add_seconds, verdict.verify_seconds = added - started, time.monotonic() - added
    for torrent_id in refusable:
        if torrent_id not in verdict.present:
            verdict.refused[torrent_id] = REFUSED
    return verdict


def verify(
    client: ClientApi, ids: set[str], wait: bool, sleep: Callable[[float], None] = time.sleep
) -> set[str]:
    """The ids qBittorrent lists; with ``wait``, waits briefly for adds it is still processing."""
    present: set[str] = set()
    missing = set(ids)
    for delay in VERIFY_DELAYS:
        if not missing:
            break
        if delay:
            sleep(delay)
        found = client.present(missing)
        present |= found
        missing -= found
        if not wait:
            break
    return present


class Courier:
    """Runs exchanges one at a time, in order, on one worker thread (``threaded``) or inline.

    One thread is enough: qBittorrent answers its WebAPI from one thread too.
    What it buys is overlap: qBittorrent adds and lists one batch while magnetd
    reads the next and moves the files of the one before.
    """

    def __init__(self, threaded: bool = True) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="magnetd-courier") if threaded else None

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Start ``fn(*args)`` (after every earlier one); its result or exception comes in the future."""
        if self._pool is not None:
            return self._pool.submit(fn, *args)
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args))
        except Exception as exc:  # delivered to whoever asks for the result, as the pool does
            future.set_exception(exc)
        return future

    def lane(self, instance: str) -> Courier:
        """The courier for ``instance``'s batches: this one (see :class:`Couriers` for one each)."""
        return self

    def close(self) -> None:
        """Finish what was submitted, then stop the thread."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)


class Couriers:
    """One threaded :class:`Courier` per instance, made on first use: sends to different
    instances run in parallel, while each instance still gets its batches in order."""

    def __init__(self) -> None:
        self._lanes: dict[str, Courier] = {}

    def lane(self, instance: str) -> Courier:
        """The courier of ``instance`` (only the supervisor's thread calls this)."""
        if instance not in self._lanes:
            self._lanes[instance] = Courier()
        return self._lanes[instance]

    def close(self) -> None:
        for courier in self._lanes.values():
            courier.close()
