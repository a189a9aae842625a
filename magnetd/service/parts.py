"""Parts: everything built from one config, rebuilt on each reload.

Clients, the VPN gate and its reconnect command, health and its prober, the
courier, the ledger, the settler and the dispatcher. What must outlive a
reload (the inbox, the counters, the announcer) is handed in.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING

from magnetd.balance.router import Balance
from magnetd.config import Config
from magnetd.delivery.courier import Couriers
from magnetd.delivery.dispatch import Dispatcher
from magnetd.delivery.fetches import Fetches
from magnetd.delivery.ledger import Ledger
from magnetd.delivery.qbittorrent import Client
from magnetd.delivery.settler import Counters, Settler
from magnetd.health.gates import Gates
from magnetd.health.prober import Prober
from magnetd.health.reconnect import Reconnector
from magnetd.health.state import Health
from magnetd.intake.inbox import Inbox
from magnetd.records.spool import Spool
from magnetd.telemetry.announcer import Announcer

if TYPE_CHECKING:
    from magnetd.telemetry.metrics import Metrics


class Parts:
    """The daemon's working parts for one config."""

    def __init__(
        self,
        config: Config,
        inbox: Inbox,
        counters: Counters,
        announcer: Announcer,
        wake: Callable[[], None],
        keepalive: Callable[[], None] = lambda: None,
        metrics: Metrics | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.clients = {
            i.name: Client(
                i.url, i.username, i.password, verify=i.verify_tls, timeout=i.timeout, api_key=i.api_key
            )
            for i in config.instances
        }
        self.gates = Gates(config.gates) if config.gates else None
        self.reconnector = _reconnector(config, announcer)
        single = config.vpn.gateway if config.vpn else None
        self.health = Health(config.instances, config.gates, wake, observer=announcer, single=single)
        self.balance = Balance(config)
        self.prober = self._prober()
        self.spool = Spool(config.folders)
        self.ledger = Ledger(self.clients, self.health, config.batch_size)
        self.courier = Couriers()
        self.settler = Settler(self.spool, inbox, counters, announcer)
        self.fetches = Fetches(config.fetch, inbox, self.settler, wake)
        self.dispatcher = Dispatcher(
            config,
            self.clients,
            self.health,
            self.gates,
            self.settler,
            ledger=self.ledger,
            courier=self.courier,
            keepalive=keepalive,
            reconnector=self.reconnector,
            on_send=metrics.observe_send if metrics is not None else None,
            balance=self.balance,
        )

    def _prober(self) -> Prober:
        c = self.config
        on_probe = self.metrics.observe_probe if self.metrics is not None else None
        return Prober(
            c.instances,
            self.clients,
            self.health,
            self.gates,
            c.probe_interval,
            self.reconnector,
            on_probe,
            balance=self.balance,
            recheck=c.recheck_interval,
        )

    def restart_prober(self) -> None:
        self.prober = self._prober()
        self.prober.start()

    def close(self) -> None:
        self.prober.stop()
        self.fetches.close()
        self.courier.close()
        if self.gates is not None:
            self.gates.close()
        for client in self.clients.values():
            client.close()


def _reconnector(config: Config, announcer: Announcer) -> Reconnector | None:
    vpn = config.vpn
    if vpn is None or not vpn.reconnect_command:
        return None
    command = shlex.join(vpn.reconnect_command)

    def report(code: int | None, seconds: float, detail: str) -> None:
        announcer.reconnect_ran(vpn.gateway, command, code, seconds, detail)

    return Reconnector(vpn.reconnect_command, vpn.reconnect_wait, report)
