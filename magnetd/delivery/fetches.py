"""The links of the files in the inbox: handed to the fetcher, picked up when done.

Owned by the supervisor's thread. A file whose links are still being fetched is
not due yet (not held): :meth:`Fetches.resolve` returns None and leaves it in
the inbox until its fetches end (:meth:`Fetches.ripen` then makes it due again)
or its back-off passes. A link that timed out, could not connect or got a 5xx
is tried again after 2, 4, 8 … s and fails ``fetch_failed`` after
``limits.fetch_attempts``. Only files that hold links ever get here.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path

from magnetd import logs
from magnetd.delivery.fetcher import FETCH_FAILED, Fetch, Fetcher
from magnetd.delivery.settler import Job, Settler, backoff
from magnetd.intake.inbox import Inbox, Waiting
from magnetd.intake.links import FetchLimits, shown
from magnetd.intake.magnet import parse_magnet
from magnetd.model import Entry, LineError, Magnet, Rejected

log = logs.get(__name__)


@dataclass
class _Link:
    """One link of one inbox file: its fetch under way, its tries, and its end once known."""

    waiting: Waiting
    future: Future[Fetch] | None = None
    attempts: int = 0
    not_before: float = 0.0
    last: str = ""
    end: Entry | LineError | None = None


class Fetches:
    """Links waiting, being fetched, or fetched, per inbox file."""

    def __init__(
        self,
        limits: FetchLimits,
        inbox: Inbox,
        settler: Settler,
        wake: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
        fetcher: Fetcher | None = None,
    ) -> None:
        self.limits = limits
        self.inbox = inbox
        self.settler = settler
        self.clock = clock
        self._ripe: deque[Path] = deque()  # files one of whose fetches ended (appended by workers)
        self.fetcher = fetcher or Fetcher(limits, wake)
        self._links: dict[tuple[Path, str], _Link] = {}

    def resolve(self, job: Job) -> Job | None:
        """``job`` with every link replaced by what it brought (or refused); None while any is pending."""
        now = self.clock()
        ends: dict[int, Entry | LineError] = {}
        waits: list[float] = []
        for entry in job.item.entries:
            if entry.link is None:
                continue
            link = self._link(job, entry)
            end = self._step(job, entry, link, now)
            if end is None:
                waits.append(link.not_before if link.future is None else now + self.limits.fetch_timeout + 1)
            else:
                ends[entry.line] = end
        if waits:
            self._wait(job, min(waits) - now)
            return None
        return self._resolved(job, ends)

    def _link(self, job: Job, entry: Entry) -> _Link:
        key = (job.waiting.path, entry.link or "")
        link = self._links.get(key)
        if link is None or link.waiting is not job.waiting:
            link = self._links[key] = _Link(job.waiting)
        return link

    def _step(self, job: Job, entry: Entry, link: _Link, now: float) -> Entry | LineError | None:
        """The link's end, if known; else start its fetch when due, and return None."""
        if link.end is not None:
            return link.end
        if link.future is not None and link.future.done():
            self._take(job, entry, link, link.future)
            link.future = None
            if link.end is not None:
                return link.end
        if link.future is None and link.not_before <= now:
            link.future = self._submit(job.waiting.path, entry.link or "")
        return None

    def _submit(self, path: Path, url: str) -> Future[Fetch]:
        future = self.fetcher.submit(url)
        future.add_done_callback(lambda _: self._ripe.append(path))
        return future

    def _take(self, job: Job, entry: Entry, link: _Link, future: Future[Fetch]) -> None:
        """Record a finished fetch: the link's end, or its next try."""
        try:
            fetch = future.result()
        except Exception as exc:  # a bug in the fetcher: fail the link, keep the loop going
            fetch = Fetch(reason="internal_error", detail=type(exc).__name__)
            log.error("link_fetch_error", file=job.rel, link=shown(entry.text), error=type(exc).__name__)
        if not fetch.transient:
            link.end = _end(entry, fetch)
            self._log_end(job, entry, fetch, link.end)
            return
        link.attempts += 1
        link.last = fetch.detail
        if link.attempts >= self.limits.fetch_attempts:
            detail = f"{fetch.detail} (tried {link.attempts} times)"
            link.end = LineError(entry.line, FETCH_FAILED, detail, entry.text)
            self._log_end(job, entry, fetch, link.end)
            return
        link.not_before = self.clock() + backoff(link.attempts)
        log.warning(
            "link_retry",
            file=job.rel,
            link=shown(entry.text),
            detail=fetch.detail,
            attempt=link.attempts,
            retry_in=backoff(link.attempts),
        )

    def _log_end(self, job: Job, entry: Entry, fetch: Fetch, end: Entry | LineError) -> None:
        if isinstance(end, LineError):
            log.warning(
                "link_failed", file=job.rel, link=shown(entry.text), reason=end.reason, detail=end.detail
            )
        else:
            kind = "magnet" if end.magnet is not None else "torrent"
            size = len(fetch.body) if fetch.body is not None else None
            log.info(
                "link_fetched",
                file=job.rel,
                link=shown(entry.text),
                kind=kind,
                infohash=end.torrent_id,
                bytes=size,
            )

    def _wait(self, job: Job, delay: float) -> None:
        """The file is not due until its fetches end or its next try: not held, just not due."""
        errors = [
            link.last for (path, _), link in self._links.items() if path == job.waiting.path and link.last
        ]
        self.inbox.retry_later(job.waiting, max(0.0, delay), errors[0] if errors else None)

    def _resolved(self, job: Job, ends: dict[int, Entry | LineError]) -> Job | None:
        entries: list[Entry] = []
        rejects = list(job.item.rejects)
        for entry in job.item.entries:
            end = ends.get(entry.line, entry) if entry.link is not None else entry
            if isinstance(end, LineError):
                rejects.append(end)
            else:
                entries.append(end)
        rejects.sort(key=lambda r: r.line)
        if not entries:
            reason = rejects[0].reason if len({r.reason for r in rejects}) == 1 else "invalid_entries"
            detail = (
                rejects[0].detail
                if len(rejects) == 1
                else f"{len(rejects)} entries could not be sent; see lines"
            )
            self.settler.fail(job.waiting, job.rel, reason, detail, rejects)
            return None
        item = replace(job.item, entries=tuple(entries), rejects=tuple(rejects), links=0)
        return replace(job, item=item)

    def ripen(self) -> None:
        """On the supervisor's thread: files one of whose fetches ended are due now; forget gone files."""
        while self._ripe:
            path = self._ripe.popleft()
            waiting = next((link.waiting for (p, _), link in self._links.items() if p == path), None)
            if waiting is not None and path in self.inbox:
                self.inbox.retry_later(waiting, 0.0)
        if self._links:
            for key in [k for k in self._links if k[0] not in self.inbox]:
                del self._links[key]

    def close(self) -> None:
        self.fetcher.close()


def _end(entry: Entry, fetch: Fetch) -> Entry | LineError:
    """What a finished, not-to-be-retried fetch makes of a link entry."""
    if fetch.magnet is not None:
        try:
            magnet: Magnet = parse_magnet(fetch.magnet)
        except Rejected as exc:
            detail = f"{shown(entry.text)} redirected to a magnet that is not valid: {exc.detail}"
            return LineError(entry.line, exc.reason, detail, entry.text)
        return Entry(entry.line, magnet.torrent_id, entry.text, magnet=magnet, name=magnet.name)
    if fetch.body is not None:
        return Entry(entry.line, fetch.torrent_id, entry.text, torrent=fetch.body, name=fetch.name)
    return LineError(entry.line, fetch.reason or FETCH_FAILED, fetch.detail, entry.text)
