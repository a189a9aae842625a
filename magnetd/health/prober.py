"""The prober: a thread that refreshes :class:`~magnetd.health.state.Health` every round.

An instance that needs the VPN is never contacted while the gate is not up.
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
from magnetd.health.gate import VpnGate
from magnetd.health.reconnect import Reconnector
from magnetd.health.state import Health
from magnetd.model import InstanceStatus

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
        gate: VpnGate | None,
        interval: float,
        reconnector: Reconnector | None = None,
        on_probe: Callable[[str, float], None] | None = None,
        balance: Balance | None = None,
    ) -> None:
        super().__init__(name="magnetd-prober", daemon=True)
        self.instances = list(instances)
        self.clients = clients
        self.health = health
        self.gate = gate
        self.interval = interval
        self.reconnector = reconnector
        self.on_probe = on_probe  # (target, seconds) of each probe, for metrics
        self.balance = balance  # several instances: their load facts are read with each probe
        self.stopped = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(self.instances)), thread_name_prefix="probe")

    def run(self) -> None:
        while not self.stopped.wait(self._pause()):
            try:
                self.round()
            except Exception as exc:
                log.exception("probe_round_failed", error=repr(exc))

    def _pause(self) -> float:
        """The wait before the next round: short while files wait for a reconnecting VPN."""
        if self.reconnector is not None and self.reconnector.holding():
            return min(self.interval, RECONNECT_RECHECK)
        return self.interval

    def round(self) -> None:
        """One health round (also called directly, before the daemon reports ready)."""
        gate = self._timed(self.gate.vpn.gateway, self.gate.check) if self.gate is not None else None
        if gate is not None:
            self.health.set_vpn(*gate)
        vpn_up = self.health.vpn_up()
        list(self._pool.map(lambda inst: self._probe(inst, vpn_up), self.instances))
        if self.balance is not None:
            self.balance.refresh(self.health)
        if gate is not None and self.reconnector is not None:  # after the probes: see Reconnector
            self.reconnector.checked(gate[0])

    def _probe(self, inst: Instance, vpn_up: bool) -> None:
        if not inst.password:  # the config refuses an empty source: never send an empty password anyway
            self.health.set_instance(inst.name, InstanceStatus.NOT_CONFIGURED, empty_detail(inst))
            return
        if inst.requires_vpn and not vpn_up:
            detail = f"VPN gateway {self.health.gateway} is not up"
            self.health.set_instance(inst.name, InstanceStatus.VPN_DOWN, detail)
            return
        try:
            version = self._timed(inst.name, self.clients[inst.name].version)
            if self.balance is not None:
                probe_load(self.balance, inst.name, self.clients[inst.name])
        except InstanceError as exc:
            self.health.set_failure(inst.name, exc)
        except Exception as exc:
            log.exception("probe_failed", instance=inst.name, error=repr(exc))
            self.health.set_instance(inst.name, InstanceStatus.UNKNOWN, f"unexpected error: {exc!r}")
        else:
            self.health.set_instance(inst.name, InstanceStatus.OK, "", version)

    def _timed(self, target: str, probe: Callable[[], T]) -> T:
        started = time.monotonic()
        try:
            return probe()
        finally:
            if self.on_probe is not None:
                self.on_probe(target, time.monotonic() - started)

    def stop(self) -> None:
        self.stopped.set()
        self._pool.shutdown(wait=False)
