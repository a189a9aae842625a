"""Carry magnets to one instance and bring back what it has: add, then verify by id.

An :class:`Exchange` is that work for one batch, in two halves: :meth:`Exchange.send`
(the adds) and :meth:`Exchange.look` (one verification look, repeated on a schedule
until every id is listed or time is up). It touches no file, so it runs on the
courier's thread while the thread that owns the inbox reads the next batch and
moves the files of earlier ones. :class:`Courier` is that thread, one per
instance; it sends every batch handed to it before it looks for earlier ones, so
that qBittorrent gets the adds of a large drop as fast as magnetd reads them, and
lists them afterwards (listing costs qBittorrent about as much per torrent as
adding, on the same thread). :func:`push` runs one exchange inline.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial

from magnetd.delivery.qbittorrent import ClientApi, InstanceError, ItemRejected
from magnetd.model import AddOptions, Entry

VERIFY_DELAYS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.8)
"""Waits before each verification look, ≈ 1.6 s in all. qBittorrent lists a new magnet within
milliseconds, so the first looks come fast; a busy instance (saving resume data, thousands
of adds queued) gets the later ones. What is still missing then is tried again as a file."""
REFUSED = "qBittorrent refused it (not added, not already present)"
CHECK_ALONG = 16
"""Batches waiting to be sent whose pre-check (what the instance lists already) goes in one
``torrents/info`` call with the one about to be sent: qBittorrent goes through every torrent
it has for each such call, so while adds queue up one look serves up to this many."""
CHECK_PER_CALL = 20_000
"""Ids per pre-check call (~0.8 MB of form): its answer lists only what was there before."""

Pairs = Sequence[tuple[Entry, AddOptions]]


@dataclass
class Verdict:
    """What one instance did with a batch, by torrent id."""

    instance: str
    present: set[str] = field(default_factory=set)
    already: set[str] = field(default_factory=set)  # listed before magnetd added them: duplicates
    refused: dict[str, str] = field(default_factory=dict)  # id -> detail
    add_seconds: float = 0.0  # time spent in torrents/add requests
    verify_seconds: float = 0.0  # from the end of the adds to the verdict, waits included


class Exchange:
    """One batch's adds and verification on one instance; its verdict comes in :attr:`future`.

    ``guard`` runs before the adds and may raise (an instance that went down
    meanwhile); ``failed`` hears of every :class:`InstanceError` at once, so that
    batches queued behind this one can skip the instance.
    """

    def __init__(
        self,
        client: ClientApi,
        instance: str,
        pairs: Pairs,
        batch_size: int,
        guard: Callable[[], None] = lambda: None,
        failed: Callable[[InstanceError], None] = lambda exc: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.pairs = pairs
        self.batch_size = batch_size
        self.guard = guard
        self.failed = failed
        self.clock = clock
        self.verdict = Verdict(instance)
        self.future: Future[Verdict] = Future()
        self.missing: set[str] = set()
        self.due = 0.0  # monotonic time of the next look
        self._accepted = False  # some request was answered "Ok.": worth waiting for its torrents
        self._refusable: list[str] = []  # ids from requests qBittorrent answered with "nothing added"
        self._looks = 0
        self._added = 0.0
        self.reached = False  # past the guard: a request went to the instance
        self.checked: set[str] | None = None  # ids the instance listed before the adds, once asked
        self._shadowed: set[str] = set()  # ids an earlier batch checked along with this one brings
        self._ids: set[str] | None = None

    def ids(self) -> set[str]:
        """Every torrent id of the batch."""
        if self._ids is None:
            self._ids = {entry.torrent_id for entry, _ in self.pairs}
        return self._ids

    def check_along(self, listed: set[str], earlier: set[str]) -> None:
        """Take the pre-check made for a group of batches: ``listed`` by the instance, and the
        ids of the group's ``earlier`` batches, which will have added them by the time this one
        is sent (they are sent again, harmlessly, and count as already present once seen)."""
        ids = self.ids()
        self.checked = listed & ids
        self._shadowed = (ids & earlier) - listed

    def send(self, queued: Sequence[Exchange] = ()) -> bool:
        """Add what the instance does not list yet; True when nothing is left to verify.

        Magnets go in as few ``torrents/add`` requests as their options allow (at
        most ``batch_size`` each), each ``.torrent`` in its own request. What the
        instance lists already is not sent again, and comes back in ``already``:
        one ``torrents/info`` call, cheap while few are there (qBittorrent's cost is
        per torrent it returns), made for the batches ``queued`` behind this one too.
        """
        self.guard()
        self.reached = True
        started = self.clock()
        verdict, client = self.verdict, self.client
        if self.checked is None:
            self._check_with(queued)
        verdict.already = self.checked or set()
        groups: dict[AddOptions, list[Entry]] = defaultdict(list)
        torrents: list[tuple[Entry, AddOptions]] = []
        for entry, options in self.pairs:
            if entry.torrent_id in verdict.already:
                continue
            if entry.magnet is not None:
                groups[options].append(entry)
            else:
                torrents.append((entry, options))
        for options, entries in groups.items():
            for start in range(0, len(entries), self.batch_size):
                chunk = entries[start : start + self.batch_size]
                answer = client.add_magnets([e.magnet.uri for e in chunk if e.magnet], options)
                self._took(answer.accepted, answer.added_ids, [e.torrent_id for e in chunk])
        for entry, options in torrents:
            try:
                answer = client.add_torrent(f"{entry.torrent_id}.torrent", entry.torrent or b"", options)
            except ItemRejected as exc:
                verdict.refused[entry.torrent_id] = exc.detail
                continue
            self._took(answer.accepted, answer.added_ids, [entry.torrent_id])
        verdict.present |= verdict.already
        wanted = self.ids() - set(verdict.refused)
        self._ids = None  # a large drop holds every batch until it lands
        self.missing = wanted - verdict.present
        self._added = self.due = self.clock()
        verdict.add_seconds = self._added - started
        return self._settled()

    def _check_with(self, queued: Sequence[Exchange]) -> None:
        """One pre-check for this batch and up to CHECK_ALONG unchecked ones queued behind it."""
        group = [self, *[e for e in queued if e.checked is None and e.client is self.client]]
        group = group[: CHECK_ALONG + 1]
        listed = self.client.present(set().union(*(member.ids() for member in group)), CHECK_PER_CALL)
        earlier: set[str] = set()
        for member in group:
            member.check_along(listed, earlier)
            earlier |= member.ids()

    def _took(self, accepted: bool, added_ids: Iterable[str], ids: list[str]) -> None:
        self._accepted |= accepted
        self.verdict.present.update(added_ids)
        if not accepted:
            self._refusable.extend(ids)

    def look(self) -> bool:
        """One ``torrents/info`` over what is still missing; True when the verdict is final."""
        found = self.client.present(self.missing)
        self.verdict.present |= found
        self.verdict.already |= found & self._shadowed
        self.missing -= found
        self._looks += 1
        if self._settled():
            return True
        self.due = self.clock() + VERIFY_DELAYS[self._looks]
        return False

    def _settled(self) -> bool:
        """Whether nothing more is worth a look; if so, the verdict is completed."""
        if self.missing and self._accepted and self._looks < len(VERIFY_DELAYS):
            return False
        verdict = self.verdict
        verdict.verify_seconds = self.clock() - self._added
        for torrent_id in self._refusable:
            if torrent_id not in verdict.present:
                verdict.refused[torrent_id] = REFUSED
        return True

    def step(self, half: Callable[[], bool]) -> bool:
        """Run one half; True when the exchange is over (its future holds the verdict or the error)."""
        try:
            if not half():
                return False
        except Exception as exc:  # delivered to whoever asks for the verdict
            if isinstance(exc, InstanceError):
                self.failed(exc)
            self.future.set_exception(exc)
            return True
        self.future.set_result(self.verdict)
        return True


def push(
    client: ClientApi,
    instance: str,
    pairs: Pairs,
    batch_size: int,
    sleep: Callable[[float], None] = time.sleep,
) -> Verdict:
    """Add ``pairs`` (entry, options) to one instance and verify them, inline; InstanceError passes up."""
    exchange = Exchange(client, instance, pairs, batch_size)
    _run_inline(exchange, sleep)
    return exchange.future.result()


def _run_inline(exchange: Exchange, sleep: Callable[[float], None]) -> None:
    done = exchange.step(exchange.send)
    while not done:
        if (wait := exchange.due - exchange.clock()) > 0:
            sleep(wait)
        done = exchange.step(exchange.look)


class Courier:
    """One instance's exchanges, on one worker thread (``threaded``) or inline.

    Adds go out in the order batches were handed over, each as soon as the
    thread is free; a verification look runs only while no batch waits to be
    sent. One thread is enough: qBittorrent answers its WebAPI from one thread too.
    An :class:`InstanceError` ends every exchange waiting for a look with it: they
    were sent to the same instance.
    """

    def __init__(
        self,
        threaded: bool = True,
        sleep: Callable[[float], None] = time.sleep,
        name: str = "magnetd-courier",
    ) -> None:
        self._threaded = threaded
        self._name = name
        self._sleep = sleep
        self._cond = threading.Condition()
        self._sends: deque[Exchange] = deque()
        self._looks: list[Exchange] = []
        self._closing = False
        self._thread: threading.Thread | None = None

    def carry(self, exchange: Exchange) -> Future[Verdict]:
        """Start ``exchange`` (its adds after every earlier batch's); its verdict comes in the future."""
        if not self._threaded:
            _run_inline(exchange, self._sleep)
            return exchange.future
        with self._cond:
            if self._closing:
                raise RuntimeError("the courier is closed")  # as a shut-down executor does
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
                self._thread.start()
            self._sends.append(exchange)
            self._cond.notify()
        return exchange.future

    def queued(self) -> int:
        """Batches handed over whose adds have not started yet."""
        with self._cond:
            return len(self._sends)

    def lane(self, instance: str) -> Courier:
        """The courier for ``instance``'s batches: this one (see :class:`Couriers` for one each)."""
        return self

    def close(self) -> None:
        """Finish every exchange handed over, then stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _work(self) -> None:
        while (task := self._next()) is not None:
            exchange, half = task
            try:
                if not exchange.step(half):
                    with self._cond:
                        self._looks.append(exchange)
            except BaseException as exc:  # never leave a future without a result
                if not exchange.future.done():
                    exchange.future.set_exception(exc)
                raise
            error = exchange.future.exception() if exchange.future.done() else None
            if isinstance(error, InstanceError) and exchange.reached:  # not a batch the guard stopped
                self._fail_looks(error)

    def _next(self) -> tuple[Exchange, Callable[[], bool]] | None:
        """The next half to run: a send before any look; None once closed and idle."""
        with self._cond:
            while True:
                if self._sends:
                    exchange = self._sends.popleft()
                    queued = list(self._sends) if exchange.checked is None else []  # for its pre-check
                    return exchange, partial(exchange.send, queued)
                if self._looks:
                    soonest = min(self._looks, key=lambda e: e.due)
                    wait = soonest.due - soonest.clock()
                    if wait <= 0:
                        self._looks.remove(soonest)
                        return soonest, soonest.look
                elif self._closing:
                    return None
                else:
                    wait = None
                self._cond.wait(wait)

    def _fail_looks(self, error: InstanceError) -> None:
        with self._cond:
            waiting, self._looks = self._looks, []
            for queued in self._sends:  # a pre-check made before the error is not trusted after it
                queued.checked = None
        for exchange in waiting:
            exchange.future.set_exception(error)


class Couriers:
    """One threaded :class:`Courier` per instance, made on first use: sends to different
    instances run in parallel, while each instance still gets its batches in order."""

    def __init__(self) -> None:
        self._lanes: dict[str, Courier] = {}

    def lane(self, instance: str) -> Courier:
        """The courier of ``instance`` (only the supervisor's thread calls this)."""
        if instance not in self._lanes:
            self._lanes[instance] = Courier(name=f"magnetd-courier-{instance}")
        return self._lanes[instance]

    def close(self) -> None:
        for courier in self._lanes.values():
            courier.close()
