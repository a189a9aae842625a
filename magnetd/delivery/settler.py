"""Settle inbox files: move each to its outcome, or schedule another try.

Owned by the supervisor's thread, like every file move. A file goes to
``sent/`` once its entries are listed (a *partial* file leaves its bad entries
in ``failed/``), to ``failed/`` when nothing in it can be sent, or back to the
inbox with a back-off when the failure may pass. Each outcome is logged once,
counted, and told to the announcer.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from magnetd import logs
from magnetd.clock import now_iso
from magnetd.delivery.courier import Verdict
from magnetd.intake import items
from magnetd.intake.inbox import Inbox, Waiting, unchanged
from magnetd.model import AddOptions, Entry, FileOutcome, Item, LineError, MagnetOutcome
from magnetd.records.spool import Spool, error_record
from magnetd.telemetry.announcer import Announcer
from magnetd.telemetry.events import EventName

MAX_ATTEMPTS = 3
"""Tries of one file before ``failed/``: a torrent qBittorrent accepted but never listed, or
an error of magnetd's own. Three spread over ~6 s of back-off tell a passing hiccup (qBittorrent
busy saving, a file briefly locked) from a file that will never go; more would only delay the
verdict a person waits for."""
UNREADABLE_ATTEMPTS = 5
"""Tries of a file that cannot be read (permission denied, I/O error) before ``failed/``: reads
fail for longer than sends (a producer still fixing permissions), so they get two more tries
(2+4+8+16 s of back-off)."""
BACKOFF_MAX = 60.0
"""The longest wait between two tries of one file: long enough not to spin, short enough that a
file fixed by hand goes out within a minute."""

RECENT = 50
"""Outcomes kept for the status endpoint and the dashboard."""

log = logs.get(__name__)


@dataclass(slots=True)
class Job:
    """One inbox file, read and parsed, with the options its magnets are added with.

    ``data``: the file's bytes where a partial outcome is written from them (queue
    files); empty otherwise, since every job of a large drop is held in memory at once.
    """

    waiting: Waiting
    rel: str  # the file's path relative to the inbox (Spool.relative)
    data: bytes
    item: Item
    options: AddOptions
    size: int = 0  # bytes the file had


@dataclass
class Counters:
    """What the settler did: files in ``sent/`` and ``failed/`` (recounted from the folders),
    totals since the start (``files``: sent/failed/partial, ``magnets``: added/rejected), and
    the last outcomes, newest last. Written by the supervisor's thread only; every key is
    there from the start, so that the endpoint's threads can copy them at any time."""

    sent: int = 0
    failed: int = 0
    files: Counter[str] = field(default_factory=lambda: Counter(dict.fromkeys(FileOutcome, 0)))
    magnets: Counter[str] = field(default_factory=lambda: Counter(dict.fromkeys(MagnetOutcome, 0)))
    recent: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=RECENT))


def backoff(attempts: int) -> float:
    """Seconds before the next try of a file tried ``attempts`` times: 2, 4, 8 … up to a minute."""
    return min(BACKOFF_MAX, float(2**attempts))


def _ids(entries: Iterable[Entry]) -> list[str]:
    return [e.torrent_id for e in entries]


class Settler:
    """Moves files to their outcomes; owned by the supervisor's thread."""

    def __init__(
        self, spool: Spool, inbox: Inbox, counters: Counters, announcer: Announcer | None = None
    ) -> None:
        self.spool = spool
        self.inbox = inbox
        self.counters = counters
        self.announcer = announcer

    def retry_or_fail(
        self,
        waiting: Waiting,
        rel: str,
        reason: str,
        detail: str,
        limit: int = MAX_ATTEMPTS,
        cause: BaseException | None = None,
    ) -> None:
        """A failure that may pass: retry with back-off, then give up to ``failed/``.

        ``cause``: an unexpected exception, whose traceback the event carries.
        """
        waiting.attempts += 1
        if waiting.attempts >= limit:
            self.fail(waiting, rel, reason, detail, cause=cause)
            return
        log.warning(
            "file_retry",
            file=rel,
            reason=reason,
            detail=detail,
            attempt=waiting.attempts,
            exc_info=cause,
        )
        self.inbox.retry_later(waiting, backoff(waiting.attempts), f"{reason}: {detail}")

    def settle(self, job: Job, verdict: Verdict) -> None:
        """Move one file to its outcome, or schedule a retry for entries still unconfirmed."""
        if not unchanged(job.waiting):  # replaced or rewritten since it was read: read it again
            log.info("file_changed", file=job.rel, action="reading it again")
            self.inbox.retry_later(job.waiting, 0.0)
            return
        entries, present = job.item.entries, verdict.present
        if not job.item.rejects and all(e.torrent_id in present for e in entries):  # the usual case
            self._sent(job, entries, [], verdict.instance, 0, verdict.already)
            return
        good = [e for e in entries if e.torrent_id in present]
        missing = [e for e in entries if e.torrent_id not in present]
        if self._unconfirmed(job, missing, verdict):
            return
        bad = sorted([*job.item.rejects, *_refusals(missing, verdict)], key=lambda r: r.line)
        rejected = sum(1 for e in missing if e.torrent_id in verdict.refused)
        if not good:
            self.fail(
                job.waiting, job.rel, _reason(bad), _detail(bad), bad, verdict.instance, rejected=rejected
            )
        else:
            self._sent(job, good, bad, verdict.instance, rejected, verdict.already)

    def _unconfirmed(self, job: Job, missing: Sequence[Entry], verdict: Verdict) -> bool:
        """Schedule another try if some entries were neither listed nor refused; True if so."""
        unresolved = [e for e in missing if e.torrent_id not in verdict.refused]
        if not unresolved or job.waiting.attempts + 1 >= MAX_ATTEMPTS:
            return False
        job.waiting.attempts += 1
        detail = f"{len(unresolved)} torrent(s) not listed by {verdict.instance} after adding"
        log.warning(
            "file_retry",
            file=job.rel,
            reason="not_added",
            detail=detail,
            instance=verdict.instance,
            attempt=job.waiting.attempts,
        )
        self.inbox.retry_later(job.waiting, backoff(job.waiting.attempts), detail)
        return True

    def _sent(
        self,
        job: Job,
        good: Sequence[Entry],
        bad: list[LineError],
        instance: str,
        rejected: int,
        already: Collection[str] = (),
    ) -> None:
        """Move a file whose ``good`` entries are listed to ``sent/`` (its ``bad`` ones to ``failed/``)."""
        try:
            if bad:
                self._partial(job, good, bad, instance)
            else:
                self.spool.sent(job.waiting.where, job.rel)
        except OSError as exc:
            self.move_failed(job.waiting, job.rel, exc)
            return
        self.inbox.forget(job.waiting.where)
        counters = self.counters
        counters.sent += 1
        duplicates = [e.torrent_id for e in good if e.torrent_id in already] if already else []
        for torrent_id in duplicates:
            log.info("magnet_already_present", file=job.rel, infohash=torrent_id, instance=instance)
        counters.magnets[MagnetOutcome.ADDED] += len(good) - len(duplicates)
        if duplicates:
            counters.magnets[MagnetOutcome.ALREADY_PRESENT] += len(duplicates)
        if rejected:
            counters.magnets[MagnetOutcome.REJECTED] += rejected
        reason = _reason(bad) if bad else None
        self._record(FileOutcome.PARTIAL if bad else FileOutcome.SENT, job.rel, reason, instance)
        log.info(
            "file_partial" if bad else "file_sent",
            file=job.rel,
            outcome="partial" if bad else "sent",
            instance=instance,
            **_hash_fields(_ids(good)),
            failed_lines=len(bad) or None,
            category=job.options.category,
        )

    def _partial(self, job: Job, good: Sequence[Entry], bad: list[LineError], instance: str) -> None:
        """Bad entries to ``failed/``, the inbox file rewritten to its good ones, then to ``sent/``."""
        path, name, data = job.waiting.path, job.waiting.name, job.data
        bad_lines = {b.line for b in bad}
        record = error_record(_reason(bad), _detail(bad), instance, bad)
        self.spool.failed(path, record, items.render(job.item, name, data, bad_lines))
        self.counters.failed += 1
        self.spool.rewrite(path, items.render(job.item, name, data, {e.line for e in good}))
        self.spool.sent(path, job.rel)

    def fail(
        self,
        waiting: Waiting,
        rel: str,
        reason: str,
        detail: str,
        lines: Sequence[LineError] = (),
        instance: str | None = None,
        cause: BaseException | None = None,
        rejected: int = 0,
    ) -> None:
        try:
            self.spool.failed(waiting.path, error_record(reason, detail, instance, lines))
        except OSError as exc:
            self.move_failed(waiting, rel, exc)
            return
        self.inbox.forget(waiting.where)
        self.counters.failed += 1
        self.counters.magnets.update(rejected=rejected)
        self._record(FileOutcome.FAILED, rel, reason, instance)
        log.warning(
            "file_failed",
            file=rel,
            outcome="failed",
            reason=reason,
            detail=detail,
            instance=instance,
            lines=len(lines) or None,
            exc_info=cause,
        )

    def _record(self, outcome: FileOutcome, rel: str, reason: str | None, instance: str | None) -> None:
        """Count an outcome, keep it among the recent ones, and tell the announcer."""
        self.counters.files[outcome] += 1
        self.counters.recent.append(
            {"file": rel, "outcome": str(outcome), "reason": reason, "instance": instance, "at": now_iso()}
        )
        if self.announcer is not None:
            if outcome != FileOutcome.FAILED:
                self.announcer.file_outcome(EventName.FILE_SENT, rel, None, instance)
            if reason is not None:
                self.announcer.file_outcome(EventName.FILE_FAILED, rel, reason, instance)

    def move_failed(self, waiting: Waiting, rel: str, exc: OSError) -> None:
        """Disk full, read-only folder, a locked file: keep it in the inbox and retry."""
        log.error(
            "file_move_failed",
            file=rel,
            error=exc.strerror or repr(exc),
            retry_in=backoff(waiting.attempts + 1),
        )
        self.inbox.retry_later(waiting, backoff(waiting.attempts + 1), f"move failed: {exc}")


_NOT_LISTED = "qBittorrent accepted the request but never listed this torrent"


def _refusals(missing: Sequence[Entry], verdict: Verdict) -> list[LineError]:
    """Why each entry the instance does not list failed: refused by it, or never listed."""
    return [
        LineError(e.line, "rejected", verdict.refused[e.torrent_id], e.text)
        if e.torrent_id in verdict.refused
        else LineError(e.line, "not_added", _NOT_LISTED, e.text)
        for e in missing
    ]


def _reason(bad: Sequence[LineError]) -> str:
    reasons = {b.reason for b in bad}
    return reasons.pop() if len(reasons) == 1 else "invalid_entries"


def _detail(bad: Sequence[LineError]) -> str:
    if len(bad) == 1:
        return bad[0].detail
    return f"{len(bad)} entries could not be sent; see lines"


def _hash_fields(ids: list[str]) -> dict[str, object]:
    return {"infohash": ids[0]} if len(ids) == 1 else {"infohashes": ids, "count": len(ids)}
