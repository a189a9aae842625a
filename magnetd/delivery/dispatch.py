"""Send a batch of inbox files to the first healthy instance, verify, and settle each file.

A batch's magnets go in as few ``torrents/add`` requests as their options
allow, and are verified with one ``torrents/info`` call. :meth:`Dispatcher.route`
hands a batch to each chosen instance's courier and returns at once;
:meth:`Dispatcher.land` waits for its verdict and moves its files. An
instance-wide failure moves the whole batch to the next healthy instance or
leaves it held in the inbox; only item-specific rejections ever reach ``failed/``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as Pending
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from magnetd import logs
from magnetd.balance.router import Balance
from magnetd.config import Config, Instance
from magnetd.delivery.courier import Courier, Couriers, Exchange, Verdict
from magnetd.delivery.qbittorrent import ClientApi, InstanceError
from magnetd.delivery.settler import UNREADABLE_ATTEMPTS, Counters, Job, Settler
from magnetd.health.gates import Gates
from magnetd.health.reconnect import Reconnector
from magnetd.health.state import Health
from magnetd.intake import items, options
from magnetd.intake.inbox import Busy, Gone, Waiting, read
from magnetd.model import AddOptions, Entry, Item, Rejected

if TYPE_CHECKING:
    from magnetd.delivery.ledger import Ledger

KEEPALIVE = 1.0
"""Seconds: while waiting for the courier, call ``keepalive`` (the systemd watchdog) at least this
often; far below any sane ``WatchdogSec``."""

log = logs.get(__name__)


@dataclass
class Flight:
    """A batch handed to the courier for one instance, not yet settled."""

    jobs: Sequence[Job]
    instance: Instance
    pairs: list[tuple[Entry, AddOptions]]
    verdict: Future[Verdict]


@dataclass
class Routed:
    """A batch handed out: a flight per chosen instance, and the jobs held because nothing is healthy."""

    flights: list[Flight]
    held: list[Job]


NO_INSTANCE = "no_instance_for_category"
"""The failure reason of a file whose category no configured instance accepts."""


def options_for(config: Config, rel: str, item: Item) -> AddOptions:
    """Defaults, then the sub-folder's options (its name as category), then the file's own."""
    return options.layered(config.defaults, config.folder_options, rel, item.options)


class Dispatcher:
    """Turns due inbox files into outcomes; owned by the supervisor's thread."""

    def __init__(
        self,
        config: Config,
        clients: Mapping[str, ClientApi],
        health: Health,
        gates: Gates | None,
        settler: Settler,
        *,
        sleep: Callable[[float], None] = time.sleep,
        ledger: Ledger | None = None,
        courier: Courier | Couriers | None = None,
        keepalive: Callable[[], None] = lambda: None,
        reconnector: Reconnector | None = None,
        on_send: Callable[[float], None] | None = None,
        balance: Balance | None = None,
    ) -> None:
        self.config = config
        self.clients = clients
        self.health = health
        self.gates = gates
        self.settler = settler
        self.spool = settler.spool
        self.inbox = settler.inbox
        self.reconnector = reconnector
        self.on_send = on_send  # seconds of each batch's add + verify, for metrics
        self.sleep = sleep
        self.courier = courier or Courier(threaded=False, sleep=sleep)
        self.balance = balance or Balance(config)
        self.keepalive = keepalive  # e.g. the systemd watchdog: a slow instance is not a hung loop
        self.ledger = ledger

    # -- loading ---------------------------------------------------------------------------

    def load(self, waiting: Waiting) -> Job | None:
        """Read and parse one file; settle it at once if it can never be sent."""
        rel = self.spool.relative(waiting.where)
        try:
            data = read(waiting, self.config.max_file_bytes, self.config.watch.settle_seconds)
            item = items.parse_item(waiting.name, data)
        except Busy:
            self.inbox.retry_later(waiting, max(0.2, self.config.watch.settle_seconds))
            return None
        except Gone:
            self.inbox.forget(waiting.where)
            return None
        except Rejected as exc:
            self.settler.fail(waiting, rel, exc.reason, exc.detail, exc.lines)
            return None
        except OSError as exc:
            detail = f"cannot read: {exc.strerror or exc}"
            self.settler.retry_or_fail(waiting, rel, "unreadable", detail, UNREADABLE_ATTEMPTS)
            return None
        except Exception as exc:  # a bug, not the file's fault: its traceback goes with the event
            self.settler.retry_or_fail(waiting, rel, "internal_error", repr(exc), cause=exc)
            return None
        kept = data if items.renders_from_bytes(item) else b""  # a large drop holds every job at once
        return Job(waiting, rel, kept, item, options_for(self.config, rel, item), len(data))

    # -- sending ---------------------------------------------------------------------------

    def candidates(self) -> list[Instance]:
        """Healthy instances in priority order; a VPN-bound one only after a fresh VPN check.

        A gate result older than :data:`~magnetd.health.state.FRESH` is read again (one
        quick check) before a batch goes to an instance that needs the gate, so that traffic
        never follows a gate that dropped since the last round.

        None while files wait for a reconnecting VPN (``vpn.reconnect_command``).
        """
        if (
            self.reconnector is not None
            and self.reconnector.holding()
            and self.health.first_choice_needs_vpn()
        ):
            return []
        usable = self.health.usable()
        stale = self.health.stale_gates(usable)
        if self.gates is not None and stale:
            for name in stale:  # a gate found down marks its instances VPN_DOWN (Health.check_gate)
                self.health.check_gate(name, partial(self.gates.check, name, quick=True))
            usable = self.health.usable()
        return usable

    def route(self, jobs: Sequence[Job], skip: Iterable[str] = ()) -> Routed:
        """Hand each job to the instance ``dispatch.strategy`` chooses among the healthy ones not in ``skip``.

        One flight per chosen instance, each on that instance's courier. Without any
        limit, category or other strategy, the whole batch goes to the first one, as it
        always did. A job no configured instance accepts fails (``no_instance_for_category``);
        one whose instances are all at a limit waits in the inbox (a probe interval, or
        until one has room). Nothing healthy: every job is held.
        """
        skipped = set(skip)
        candidates = [inst for inst in self.candidates() if inst.name not in skipped]
        if not candidates:
            return Routed([], list(jobs))  # the supervisor holds the inbox and logs `files_held` once
        if self.balance.plain():
            return Routed([self._fly(jobs, candidates[0])], [])
        groups: dict[str, list[Job]] = {}
        for job in jobs:
            inst = self._choose(job, candidates)
            if inst is not None:
                groups.setdefault(inst.name, []).append(job)
        self.balance.refresh(self.health)
        chosen = {inst.name: inst for inst in candidates}
        return Routed([self._fly(group, chosen[name]) for name, group in groups.items()], [])

    def _choose(self, job: Job, candidates: Sequence[Instance]) -> Instance | None:
        """The instance for one job; None when it failed or waits."""
        category = job.options.category
        if not self.balance.routable(category):
            detail = f"no configured instance lists category {category!r} in its categories"
            if category is None:
                detail = "the item has no category and every instance takes only listed categories"
            self.settler.fail(job.waiting, job.rel, NO_INSTANCE, detail)
            return None
        inst = self.balance.choose(candidates, category, len(job.item.entries))
        if inst is None:
            reason = f"no eligible instance can take it now ({self.health.summary()})"
            self.inbox.retry_later(job.waiting, self.config.probe_interval, reason)
            log.debug("file_waiting", file=job.rel, category=category, reason=reason)
        return inst

    def _fly(self, jobs: Sequence[Job], inst: Instance) -> Flight:
        pairs = [(entry, job.options) for job in jobs for entry in job.item.entries]
        exchange = Exchange(
            self.clients[inst.name],
            inst.name,
            pairs,
            self.config.batch_size,
            guard=partial(self._still_usable, inst),
            failed=partial(self.health.set_failure, inst.name),
        )
        return Flight(jobs, inst, pairs, self.courier.lane(inst.name).carry(exchange))

    def _still_usable(self, inst: Instance) -> None:
        """On the courier, before a batch's adds: raise if an earlier batch found the instance down."""
        if inst not in self.health.usable():
            raise InstanceError(_SKIPPED, f"{inst.name} stopped being usable before this batch was sent")

    def _verdict(self, flight: Flight) -> Verdict:
        """The flight's verdict, calling ``keepalive`` while it is not there yet."""
        while True:
            try:
                return flight.verdict.result(timeout=KEEPALIVE)
            except Pending:
                self.keepalive()

    def land(self, flight: Flight, tried: Iterable[str] = ()) -> bool:
        """Wait for a flight's verdict and settle its files; fail over on an instance-wide error.

        False when no instance took the batch: its files stay in the inbox, held.
        """
        inst = flight.instance
        tried = {*tried, inst.name}
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
            retry = self.route(flight.jobs, skip=tried)
            landed = [self.land(again, tried) for again in retry.flights]
            return all(landed) and not retry.held
        settling = time.monotonic()
        if self.on_send is not None:
            self.on_send(verdict.add_seconds + verdict.verify_seconds)
        if self.ledger is not None:
            self.ledger.record(inst.name, [p for p in flight.pairs if p[0].torrent_id in verdict.present])
        for job in flight.jobs:
            self.settler.settle(job, verdict)
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


_SKIPPED = "SKIPPED"  # status of a batch not sent because its instance went down meanwhile
__all__ = [
    "Counters",
    "Dispatcher",
    "Flight",
    "Job",
    "Routed",
    "options_for",
]  # Counters, Job: for the supervisor
