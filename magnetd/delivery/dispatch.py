"""Send a batch of inbox files to the first healthy instance, verify, and settle each file.

A batch's magnets go in as few ``torrents/add`` requests as their options
allow, and are verified with one ``torrents/info`` call. :meth:`Dispatcher.launch`
hands a batch to the courier and returns at once; :meth:`Dispatcher.land` waits
for its verdict and moves its files. An instance-wide failure moves the whole
batch to the next healthy instance or leaves it held in the inbox; only
item-specific rejections ever reach ``failed/``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as Pending
from dataclasses import dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING

from magnetd import logs
from magnetd.config import Config, Instance
from magnetd.delivery.courier import Courier, Verdict, push
from magnetd.delivery.qbittorrent import ClientApi, InstanceError
from magnetd.health.gate import VpnGate
from magnetd.health.state import Health
from magnetd.intake import items
from magnetd.intake.inbox import Busy, Gone, Inbox, Waiting, read, unchanged
from magnetd.model import AddOptions, Entry, GateStatus, InstanceStatus, Item, LineError, Rejected
from magnetd.records.spool import Spool, error_record

if TYPE_CHECKING:
    from magnetd.delivery.ledger import Ledger

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
KEEPALIVE = 1.0
"""Seconds: while waiting for the courier, call ``keepalive`` (the systemd watchdog) at least this
often; far below any sane ``WatchdogSec``."""
VPN_RECHECK = 1.0
"""Seconds: a VPN result older than this is checked again (one ping) before a batch goes to a
VPN-bound instance, so that traffic never follows a gate that dropped since the last round."""

log = logs.get(__name__)


@dataclass
class Job:
    """One inbox file, read and parsed, with the options its magnets are added with."""

    waiting: Waiting
    rel: PurePath
    data: bytes
    item: Item
    options: AddOptions


@dataclass
class Flight:
    """A batch handed to the courier for one instance, not yet settled."""

    jobs: Sequence[Job]
    instance: Instance
    pairs: list[tuple[Entry, AddOptions]]
    verdict: Future[Verdict]


@dataclass
class Counters:
    sent: int = 0
    failed: int = 0


def backoff(attempts: int) -> float:
    """Seconds before the next try of a file tried ``attempts`` times: 2, 4, 8 … up to a minute."""
    return min(BACKOFF_MAX, float(2**attempts))


def options_for(config: Config, rel: PurePath, item: Item) -> AddOptions:
    """Defaults, then the sub-folder's category, then the file's own options."""
    d = config.defaults
    base = AddOptions(d.category, d.savepath, d.tags or None, d.paused)
    folder = AddOptions(category="/".join(rel.parent.parts)) if rel.parent.parts else AddOptions()
    return item.options.over(folder.over(base))


def _ids(entries: Iterable[Entry]) -> list[str]:
    return [e.torrent_id for e in entries]


class Dispatcher:
    """Turns due inbox files into outcomes; owned by the supervisor's thread."""

    def __init__(
        self,
        config: Config,
        clients: Mapping[str, ClientApi],
        health: Health,
        gate: VpnGate | None,
        spool: Spool,
        inbox: Inbox,
        counters: Counters,
        sleep: Callable[[float], None] = time.sleep,
        ledger: Ledger | None = None,
        courier: Courier | None = None,
        keepalive: Callable[[], None] = lambda: None,
    ) -> None:
        self.config = config
        self.clients = clients
        self.health = health
        self.gate = gate
        self.spool = spool
        self.inbox = inbox
        self.counters = counters
        self.sleep = sleep
        self.courier = courier or Courier(threaded=False)
        self.keepalive = keepalive  # e.g. the systemd watchdog: a slow instance is not a hung loop
        self.ledger = ledger

    # -- loading ---------------------------------------------------------------------------

    def load(self, waiting: Waiting) -> Job | None:
        """Read and parse one file; settle it at once if it can never be sent."""
        rel = self.spool.relative(waiting.path)
        try:
            data = read(waiting, self.config.max_file_bytes, self.config.watch.settle_seconds)
            item = items.parse_item(waiting.path.name, data)
        except Busy:
            self.inbox.retry_later(waiting, max(0.2, self.config.watch.settle_seconds))
            return None
        except Gone:
            self.inbox.forget(waiting.path)
            return None
        except Rejected as exc:
            self._fail(waiting, rel, exc.reason, exc.detail, exc.lines)
            return None
        except OSError as exc:
            detail = f"cannot read: {exc.strerror or exc}"
            self.retry_or_fail(waiting, rel, "unreadable", detail, UNREADABLE_ATTEMPTS)
            return None
        except Exception as exc:  # a bug, not the file's fault: its traceback goes with the event
            self.retry_or_fail(waiting, rel, "internal_error", repr(exc), cause=exc)
            return None
        return Job(waiting, rel, data, item, options_for(self.config, rel, item))

    def retry_or_fail(
        self,
        waiting: Waiting,
        rel: PurePath,
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
            self._fail(waiting, rel, reason, detail, cause=cause)
            return
        log.warning(
            "file_retry",
            file=str(rel),
            reason=reason,
            detail=detail,
            attempt=waiting.attempts,
            exc_info=cause,
        )
        self.inbox.retry_later(waiting, backoff(waiting.attempts), f"{reason}: {detail}")

    # -- sending ---------------------------------------------------------------------------

    def candidates(self) -> list[Instance]:
        """Healthy instances in priority order; a VPN-bound one only after a fresh VPN check."""
        usable = self.health.usable()
        if self.gate and any(i.requires_vpn for i in usable) and self.health.vpn_age() > VPN_RECHECK:
            status, detail = self.gate.check(count=1, timeout=min(1.0, self.gate.vpn.timeout))
            self.health.set_vpn(status, detail)
            if status != GateStatus.UP:
                for inst in usable:
                    if inst.requires_vpn:
                        self.health.set_instance(inst.name, InstanceStatus.VPN_DOWN, detail)
                usable = self.health.usable()
        return usable

    def launch(self, jobs: Sequence[Job], skip: Iterable[str] = ()) -> Flight | None:
        """Hand ``jobs`` to the courier for the first healthy instance not in ``skip``; None: held."""
        for inst in self.candidates():
            if inst.name in skip:
                continue
            pairs = [(entry, job.options) for job in jobs for entry in job.item.entries]
            return Flight(jobs, inst, pairs, self.courier.submit(self._carry, inst, pairs))
        return None  # the supervisor holds the inbox and logs `files_held` once

    def _carry(self, inst: Instance, pairs: list[tuple[Entry, AddOptions]]) -> Verdict:
        """On the courier: push, unless an earlier batch found the instance down meanwhile."""
        if inst not in self.health.usable():
            raise InstanceError(_SKIPPED, f"{inst.name} stopped being usable before this batch was sent")
        try:
            return push(self.clients[inst.name], inst.name, pairs, self.config.batch_size, self.sleep)
        except InstanceError as exc:  # at once, so that batches queued behind this one skip it
            self.health.set_failure(inst.name, exc)
            raise

    def _verdict(self, flight: Flight) -> Verdict:
        """The flight's verdict, calling ``keepalive`` while it is not there yet."""
        while True:
            try:
                return flight.verdict.result(timeout=KEEPALIVE)
            except Pending:
                self.keepalive()

    def land(self, flight: Flight) -> bool:
        """Wait for a flight's verdict and settle its files; fail over on an instance-wide error.

        False when no instance took the batch: its files stay in the inbox, held.
        """
        tried: set[str] = set()
        while True:
            inst = flight.instance
            tried.add(inst.name)
            waited = time.monotonic()
            try:
                verdict = self._verdict(flight)
            except InstanceError as exc:
                log.warning(
                    "batch_failover",
                    instance=inst.name,
                    status=exc.status,
                    detail=exc.detail,
                    files=len(flight.jobs),
                )
                retry = self.launch(flight.jobs, skip=tried)
                if retry is None:
                    return False
                flight = retry
                continue
            settling = time.monotonic()
            if self.ledger is not None:
                self.ledger.record(inst.name, [p for p in flight.pairs if p[0].torrent_id in verdict.present])
            for job in flight.jobs:
                self._settle(job, verdict)
            log.debug(
                "batch_landed",
                instance=inst.name,
                files=len(flight.jobs),
                magnets=len(flight.pairs),
                add_ms=round(verdict.add_seconds * 1000, 1),
                verify_ms=round(verdict.verify_seconds * 1000, 1),
                waited_ms=round((settling - waited) * 1000, 1),
                settle_ms=round((time.monotonic() - settling) * 1000, 1),
            )
            return True

    # -- settling --------------------------------------------------------------------------

    def _settle(self, job: Job, verdict: Verdict) -> None:
        """Move one file to its outcome, or schedule a retry for entries still unconfirmed."""
        if not unchanged(job.waiting):  # replaced or rewritten since it was read: read it again
            log.info("file_changed", file=str(job.rel), action="reading it again")
            self.inbox.retry_later(job.waiting, 0.0)
            return
        good = [e for e in job.item.entries if e.torrent_id in verdict.present]
        missing = [e for e in job.item.entries if e.torrent_id not in verdict.present]
        if self._unconfirmed(job, missing, verdict):
            return
        bad = sorted([*job.item.rejects, *_refusals(missing, verdict)], key=lambda r: r.line)
        if not good:
            self._fail(job.waiting, job.rel, _reason(bad), _detail(bad), bad, verdict.instance)
        else:
            self._sent(job, good, bad, verdict.instance)

    def _unconfirmed(self, job: Job, missing: Sequence[Entry], verdict: Verdict) -> bool:
        """Schedule another try if some entries were neither listed nor refused; True if so."""
        unresolved = [e for e in missing if e.torrent_id not in verdict.refused]
        if not unresolved or job.waiting.attempts + 1 >= MAX_ATTEMPTS:
            return False
        job.waiting.attempts += 1
        detail = f"{len(unresolved)} torrent(s) not listed by {verdict.instance} after adding"
        log.warning(
            "file_retry",
            file=str(job.rel),
            reason="not_added",
            detail=detail,
            instance=verdict.instance,
            attempt=job.waiting.attempts,
        )
        self.inbox.retry_later(job.waiting, backoff(job.waiting.attempts), detail)
        return True

    def _sent(self, job: Job, good: list[Entry], bad: list[LineError], instance: str) -> None:
        """Move a file whose ``good`` entries are listed to ``sent/`` (its ``bad`` ones to ``failed/``)."""
        try:
            if bad:
                self._partial(job, good, bad, instance)
            else:
                self.spool.sent(job.waiting.path, job.rel)
        except OSError as exc:
            self._move_failed(job.waiting, job.rel, exc)
            return
        self.inbox.forget(job.waiting.path)
        self.counters.sent += 1
        log.info(
            "file_partial" if bad else "file_sent",
            file=str(job.rel),
            outcome="partial" if bad else "sent",
            instance=instance,
            **_hash_fields(_ids(good)),
            failed_lines=len(bad) or None,
            category=job.options.category,
        )

    def _partial(self, job: Job, good: list[Entry], bad: list[LineError], instance: str) -> None:
        """Bad entries to ``failed/``, the inbox file rewritten to its good ones, then to ``sent/``."""
        path, name, data = job.waiting.path, job.waiting.path.name, job.data
        bad_lines = {b.line for b in bad}
        record = error_record(_reason(bad), _detail(bad), instance, bad)
        self.spool.failed(path, record, items.render(job.item, name, data, bad_lines))
        self.counters.failed += 1
        self.spool.rewrite(path, items.render(job.item, name, data, {e.line for e in good}))
        self.spool.sent(path, job.rel)

    def _fail(
        self,
        waiting: Waiting,
        rel: PurePath,
        reason: str,
        detail: str,
        lines: Sequence[LineError] = (),
        instance: str | None = None,
        cause: BaseException | None = None,
    ) -> None:
        try:
            self.spool.failed(waiting.path, error_record(reason, detail, instance, lines))
        except OSError as exc:
            self._move_failed(waiting, rel, exc)
            return
        self.inbox.forget(waiting.path)
        self.counters.failed += 1
        log.warning(
            "file_failed",
            file=str(rel),
            outcome="failed",
            reason=reason,
            detail=detail,
            instance=instance,
            lines=len(lines) or None,
            exc_info=cause,
        )

    def _move_failed(self, waiting: Waiting, rel: PurePath, exc: OSError) -> None:
        """Disk full, read-only folder, a locked file: keep it in the inbox and retry."""
        log.error(
            "file_move_failed",
            file=str(rel),
            error=exc.strerror or repr(exc),
            retry_in=backoff(waiting.attempts + 1),
        )
        self.inbox.retry_later(waiting, backoff(waiting.attempts + 1), f"move failed: {exc}")


_SKIPPED = "SKIPPED"  # status of a batch not sent because its instance went down meanwhile
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


__all__ = ["Counters", "Dispatcher", "Flight", "Job", "options_for"]
