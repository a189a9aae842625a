"""Health: the VPN gate (ICMP ping) and each instance's status, probed every round.

:class:`Health` is the shared, locked record both threads use; :class:`Prober`
is the thread that refreshes it. An instance that needs the VPN is never
contacted while the gateway does not answer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from magnetd import logs
from magnetd.config import Instance, Vpn
from magnetd.qbittorrent import Client, InstanceError
from magnetd.spool import now_iso
from magnetd.status import InstanceView

OK, VPN_DOWN, UNKNOWN, NOT_CONFIGURED = "OK", "VPN_DOWN", "UNKNOWN", "NOT_CONFIGURED"
UP, DOWN, PING_NOT_PERMITTED = "UP", "DOWN", "PING_NOT_PERMITTED"
PING_FIX = (
    "magnetd may not send ICMP: run it with CAP_NET_RAW (AmbientCapabilities=CAP_NET_RAW in the"
    " systemd unit) or allow unprivileged ping for its group: sysctl net.ipv4.ping_group_range"
    "='0 2147483647'; on Windows run the service as an account allowed raw sockets"
)

log = logs.get("magnetd.health")


class VpnGate:
    """Pings the VPN gateway; remembers whether a privileged or unprivileged socket works."""

    def __init__(self, vpn: Vpn, pinger: Callable[..., Any] | None = None) -> None:
        self.vpn = vpn
        self._pinger = pinger
        self._modes: list[bool] = [True, False]

    def check(self, count: int | None = None, timeout: float | None = None) -> tuple[str, str]:
        """``(status, detail)``: UP, DOWN or PING_NOT_PERMITTED."""
        import icmplib

        ping = self._pinger or icmplib.ping
        for privileged in list(self._modes):
            try:
                host = ping(
                    self.vpn.gateway,
                    count=count or self.vpn.count,
                    interval=0.2,
                    timeout=timeout or self.vpn.timeout,
                    privileged=privileged,
                )
            except icmplib.SocketPermissionError:
                continue
            except icmplib.NameLookupError:
                return DOWN, f"cannot resolve {self.vpn.gateway}"
            except (icmplib.ICMPLibError, OSError) as exc:
                return DOWN, f"ping failed: {exc}"
            self._modes = [privileged]
            if host.is_alive:
                return UP, f"rtt {host.avg_rtt:.1f} ms"
            return DOWN, f"no answer from {self.vpn.gateway} ({host.packets_sent} pings)"
        return PING_NOT_PERMITTED, PING_FIX


@dataclass
class _State:
    status: str = UNKNOWN
    detail: str = "not probed yet"
    since: str = field(default_factory=now_iso)
    version: str | None = None
    last_error: str | None = None


class Health:
    """The latest VPN and instance statuses; every change is logged and wakes the supervisor."""

    def __init__(
        self,
        instances: Sequence[Instance],
        vpn: Vpn | None,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self._lock = threading.Lock()
        self._instances = list(instances)
        self._states = {inst.name: _State() for inst in instances}
        self._vpn = _State() if vpn else None
        self._vpn_checked = 0.0
        self.gateway = vpn.gateway if vpn else None
        self.wake = wake

    def set_vpn(self, status: str, detail: str) -> None:
        with self._lock:
            assert self._vpn is not None
            self._vpn_checked = time.monotonic()
            changed = _update(self._vpn, status, detail)
        if changed:
            level = log.info if status == UP else log.warning
            level("vpn_status_changed", gateway=self.gateway, old=changed, status=status, detail=detail)
            self.wake()

    def vpn_up(self) -> bool:
        with self._lock:
            return self._vpn is None or self._vpn.status == UP

    def vpn_age(self) -> float:
        with self._lock:
            return time.monotonic() - self._vpn_checked

    def set_instance(self, name: str, status: str, detail: str = "", version: str | None = None) -> None:
        with self._lock:
            state = self._states[name]
            changed = _update(state, status, detail)
            if version:
                state.version = version
        if changed:
            level = log.info if status == OK else log.warning
            level("instance_status_changed", instance=name, old=changed, status=status, detail=detail)
            self.wake()

    def usable(self) -> list[Instance]:
        """Instances that are OK now, in priority order (VPN-bound ones only while it is up)."""
        with self._lock:
            vpn_up = self._vpn is None or self._vpn.status == UP
            return [
                inst
                for inst in self._instances
                if self._states[inst.name].status == OK and (vpn_up or not inst.requires_vpn)
            ]

    def vpn_view(self) -> dict[str, Any] | None:
        with self._lock:
            if self._vpn is None:
                return None
            return {
                "gateway": self.gateway,
                "status": self._vpn.status,
                "detail": self._vpn.detail,
                "since": self._vpn.since,
            }

    def views(self) -> list[InstanceView]:
        with self._lock:
            return [
                InstanceView(
                    name=inst.name,
                    url=inst.url,
                    status=(s := self._states[inst.name]).status,
                    detail=s.detail,
                    since=s.since,
                    requires_vpn=inst.requires_vpn,
                    webapi=s.version,
                    last_error=s.last_error,
                )
                for inst in self._instances
            ]

    def summary(self) -> str:
        """One line for systemd's STATUS=, e.g. ``primary VPN_DOWN · secondary OK``."""
        with self._lock:
            return " · ".join(f"{i.name} {self._states[i.name].status}" for i in self._instances)


def _update(state: _State, status: str, detail: str) -> str | None:
    """Apply a status; return the old one if it changed."""
    old = state.status
    state.detail = detail
    if status != OK:
        state.last_error = f"{status}: {detail}" if detail else status
    if status == old:
        return None
    state.status = status
    state.since = now_iso()
    return old


class Prober(threading.Thread):
    """Every ``interval`` seconds: ping the gateway, then probe each instance in parallel."""

    def __init__(
        self,
        instances: Sequence[Instance],
        clients: Mapping[str, Client],
        health: Health,
        gate: VpnGate | None,
        interval: float,
    ) -> None:
        super().__init__(name="magnetd-prober", daemon=True)
        self.instances = list(instances)
        self.clients = clients
        self.health = health
        self.gate = gate
        self.interval = interval
        self.stopped = threading.Event()
        self.rounds = 0
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(self.instances)), thread_name_prefix="probe")

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                self.round()
            except Exception as exc:
                log.error("probe_round_failed", error=repr(exc))

    def round(self) -> None:
        """One health round (also called directly, before the daemon reports ready)."""
        if self.gate is not None:
            self.health.set_vpn(*self.gate.check())
        vpn_up = self.health.vpn_up()
        list(self._pool.map(lambda inst: self._probe(inst, vpn_up), self.instances))
        self.rounds += 1

    def _probe(self, inst: Instance, vpn_up: bool) -> None:
        if not inst.password:
            hint = "its password source is empty: fill the password file, variable or credential"
            self.health.set_instance(inst.name, NOT_CONFIGURED, hint)
            return
        if inst.requires_vpn and not vpn_up:
            self.health.set_instance(inst.name, VPN_DOWN, f"VPN gateway {self.health.gateway} is not up")
            return
        try:
            version = self.clients[inst.name].version()
        except InstanceError as exc:
            self.health.set_instance(inst.name, exc.status, exc.detail)
        except Exception as exc:
            self.health.set_instance(inst.name, UNKNOWN, repr(exc))
        else:
            self.health.set_instance(inst.name, OK, "", version)

    def stop(self) -> None:
        self.stopped.set()
        self._pool.shutdown(wait=False)
