"""The prober: a thread that refreshes :class:`~magnetd.health.state.Health`.

Every ``probe_interval`` a full round checks every gate and probes every
instance. In between, whatever is not OK is re-checked every
``recheck_interval`` (adaptive probing), so that held files leave within about
that long of a recovery; an instance whose login failed is never re-checked
fast (its back-off stands). An instance that needs a gate is never contacted
while the gate is not up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from magnetd import logs
from magnetd.balance.probe import probe_load
from magnetd.balance.router import Balance
from magnetd.config import Instance
from magnetd.delivery.qbittorrent import ClientApi, InstanceError
from magnetd.health.advice import empty_detail
from magnetd.health.gates import Gates
from magnetd.health.reconnect import Reconnector
from magnetd.health.state import Health
from magnetd.model import GateStatus, InstanceStatus

T = TypeVar("T")

log = logs.get(__name__)

RECONNECT_RECHECK = 1.0
"""Seconds between rounds while files wait for a reconnecting VPN: its return is seen at once."""


class Prober(threading.Thread):
    """Every ``interval`` seconds: check the gate, then probe each instance in parallel."""

    def __init__(
        self,
        instances: Sequence[Instance],
        clients: Mapping[str, ClientApi],
        health: Health,
        gates: Gates | None,
        interval: float,
        reconnector: Reconnector | None = None,
        on_probe: Callable[[str, float], None] | None = None,
        balance: Balance | None = None,
        recheck: float | None = None,
    ) -> None:
        super().__init__(name="magnetd-prober", daemon=True)
        self.instances = list(instances)
        self.clients = clients
        self.health = health
        self.gates = gates
        self.interval = interval
        self.recheck_interval = min(interval, recheck if recheck is not None else interval)
        self._next_round = 0.0
        self._last = 0.0  # when the last round or re-check started
        self.reconnector = reconnector
        self.on_probe = on_probe  # (target, seconds) of each probe, for metrics
        self.balance = balance  # several instances: their load facts are read with each probe
        self.stopped = threading.Event()
        workers = max(1, len(self.instances), len(gates.names) if gates else 0)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probe")

    def run(self) -> None:
        while not self.stopped.is_set():
            pause = self._pause()
            if pause > 0:  # any change of status (e.g. a gate the dispatcher found down) wakes it
                self.health.changed.wait(pause)
                self.health.changed.clear()
                continue
            try:
                if time.monotonic() >= self._next_round:
                    self.round()
                else:
                    self.recheck()
            except Exception as exc:
                log.exception("probe_round_failed", error=repr(exc))

    def _pause(self) -> float:
        """Seconds until the next round, or until what is not OK is due for a re-check."""
        now = time.monotonic()
        due = self._next_round
        if self.reconnector is not None and self.reconnector.holding():
            due = min(due, self._last + RECONNECT_RECHECK)
        gates, instances = self.health.not_ok()
        if gates or instances:
            due = min(due, self._last + self.recheck_interval)
        return due - now

    def round(self) -> None:
        """One full health round (also called directly, before the daemon reports ready)."""
        self._last = time.monotonic()
        self._next_round = self._last + self.interval
        self._check(self.gates.names if self.gates is not None else [], self.instances)

    def recheck(self) -> None:
        """Between rounds: only the gates and instances that are not OK (never a failed login).

        An instance to re-probe that needs a gate shown UP gets that gate read again first
        when its result is older than ``FRESH``: the VPN may have gone down since.
        """
        self._last = time.monotonic()
        gates, instances = self.health.not_ok()
        stale = [name for name in self.health.stale_gates(instances) if name not in gates]
        self._check([*gates, *stale], instances)

    def _check(self, gates: Sequence[str], instances: Sequence[Instance]) -> None:
        results = list(self._pool.map(self._check_gate, gates))
        list(self._pool.map(self._probe, instances))
        if self.balance is not None:
            self.balance.refresh(self.health)
        if (
            self.reconnector is not None and self.health.single is not None
        ):  # after the probes: see Reconnector
            for name, (status, _) in zip(gates, results, strict=True):
                if name == self.health.single:
                    self.reconnector.checked(status)

    def _check_gate(self, name: str) -> tuple[GateStatus, str]:
        gates = self.gates
        assert gates is not None
        return self.health.check_gate(name, lambda: self._timed(name, lambda: gates.check(name)))

    def _probe(self, inst: Instance) -> None:
        if not (inst.password or inst.api_key):  # the config refuses an empty source: never send one
            self.health.set_instance(inst.name, InstanceStatus.NOT_CONFIGURED, empty_detail(inst))
            return
        blocked = self.health.blocked(inst)
        if blocked is not None:
            self.health.set_instance(inst.name, InstanceStatus.VPN_DOWN, blocked)
            return
        client = self.clients[inst.name]
        try:
            version = self._timed(inst.name, client.version)
            app = client.app_version()  # asked once per session
            disconnected = inst.require_connection and client.connection_status() == "disconnected"
            if self.balance is not None:
                probe_load(self.balance, inst.name, client, version)
        except InstanceError as exc:
            self.health.set_failure(inst.name, exc)
        except Exception as exc:
            log.exception("probe_failed", instance=inst.name, error=repr(exc))
            self.health.set_instance(inst.name, InstanceStatus.UNKNOWN, f"unexpected error: {exc!r}")
        else:
            if disconnected:  # require_connection: e.g. its bound network interface is gone
                detail = "qBittorrent reports connection_status disconnected (is its network interface gone?)"
                self.health.set_instance(inst.name, InstanceStatus.DISCONNECTED, detail, version, app)
            else:
                self.health.set_instance(inst.name, InstanceStatus.OK, "", version, app)

    def _timed(self, target: str, probe: Callable[[], T]) -> T:
        started = time.monotonic()
        try:
            return probe()
        finally:
            if self.on_probe is not None:
                self.on_probe(target, time.monotonic() - started)

    def stop(self) -> None:
        self.stopped.set()
        self.health.changed.set()
        self._pool.shutdown(wait=False)
