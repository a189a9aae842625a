"""The latest VPN and instance statuses: one locked record that the prober writes and the loop reads."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from magnetd import logs
from magnetd.balance.strategy import Verdict
from magnetd.clock import now_iso
from magnetd.config import Instance, Vpn
from magnetd.delivery.qbittorrent import InstanceError
from magnetd.health.advice import NEEDS_CONFIG, failure_detail
from magnetd.model import GateStatus, InstanceStatus
from magnetd.records.status import InstanceView

log = logs.get(__name__)


class Observer(Protocol):
    """Told of every change of status, outside the lock (e.g. the announcer)."""

    def gate_changed(self, gate: str, status: str, detail: str) -> None: ...

    def instance_changed(self, name: str, status: str, detail: str) -> None: ...


class _Nobody:
    def gate_changed(self, gate: str, status: str, detail: str) -> None:
        pass

    def instance_changed(self, name: str, status: str, detail: str) -> None:
        pass


@dataclass
class _State:
    status: str = InstanceStatus.UNKNOWN
    detail: str = "not probed yet"
    since: str = field(default_factory=now_iso)
    version: str | None = None
    last_error: str | None = None
    limit: tuple[str, str, str] | None = None  # (status, detail, since) of a limit while probed OK


class Health:
    """The latest VPN and instance statuses; every change is logged and wakes the supervisor."""

    def __init__(
        self,
        instances: Sequence[Instance],
        vpn: Vpn | None,
        wake: Callable[[], None] = lambda: None,
        observer: Observer | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._observer: Observer = observer or _Nobody()
        self._instances = list(instances)
        self._states = {inst.name: _State() for inst in instances}
        self._vpn = _State() if vpn else None
        self._vpn_checked = 0.0
        self.gateway = vpn.gateway if vpn else None
        self.wake = wake

    def set_vpn(self, status: GateStatus, detail: str) -> None:
        with self._lock:
            assert self._vpn is not None
            self._vpn_checked = time.monotonic()
            changed = _update(self._vpn, status, detail, ok=GateStatus.UP)
        if changed:
            level = log.info if status == GateStatus.UP else log.warning
            level("vpn_status_changed", gateway=self.gateway, old=changed, status=status, detail=detail)
            self._observer.gate_changed(self.gateway or "vpn", status, detail)
            self.wake()

    def vpn_up(self) -> bool:
        with self._lock:
            return self._vpn is None or self._vpn.status == GateStatus.UP

    def vpn_age(self) -> float:
        with self._lock:
            return time.monotonic() - self._vpn_checked

    def set_instance(self, name: str, status: str, detail: str = "", version: str | None = None) -> None:
        with self._lock:
            state = self._states[name]
            changed = _update(state, status, detail, ok=InstanceStatus.OK)
            if version:
                state.version = version
        if changed:
            level = log.info if status == InstanceStatus.OK else log.warning
            level("instance_status_changed", instance=name, old=changed, status=status, detail=detail)
            self._observer.instance_changed(name, status, detail)
            self.wake()

    def set_failure(self, name: str, error: InstanceError) -> None:
        """Record an instance's error, with what to do about it; its raw text goes to the debug log."""
        if error.raw:
            log.debug("instance_error", instance=name, status=error.status, raw=error.raw)
        inst = next(i for i in self._instances if i.name == name)
        self.set_instance(name, error.status, failure_detail(inst, error, dt.datetime.now(dt.UTC)))

    def set_limit(self, name: str, verdict: Verdict | None) -> None:
        """Show a limit's status (BUSY, LOW_SPACE, RATE_LIMITED) over OK; None: it has room again."""
        new = (verdict.status, verdict.detail) if verdict is not None else None
        with self._lock:
            state = self._states[name]
            old = state.limit
            if (old[:2] if old else None) == new:
                return
            state.limit = (*new, now_iso()) if new is not None else None
            probed = state.status
        if probed == InstanceStatus.OK:
            log.info(
                "instance_status_changed",
                instance=name,
                old=old[0] if old else probed,
                status=new[0] if new else probed,
                detail=new[1] if new else "",
            )
        if new is None:
            self.wake()  # held files may go now

    def shown(self, state: _State) -> tuple[str, str, str]:
        """The status, detail and since to show: a limit's while probed OK, else the probe's."""
        if state.status == InstanceStatus.OK and state.limit is not None:
            return state.limit
        return state.status, state.detail, state.since

    def needing_config(self) -> list[Instance]:
        """Instances that only a changed config or password file can bring back (e.g. AUTH_FAILED)."""
        with self._lock:
            return [i for i in self._instances if self._states[i.name].status in NEEDS_CONFIG]

    def usable(self) -> list[Instance]:
        """Instances that are OK now, in priority order (VPN-bound ones only while it is up)."""
        with self._lock:
            vpn_up = self._vpn is None or self._vpn.status == GateStatus.UP
            return [
                inst
                for inst in self._instances
                if self._states[inst.name].status == InstanceStatus.OK and (vpn_up or not inst.requires_vpn)
            ]

    def first_choice_needs_vpn(self) -> bool:
        """Whether the instance that would get files if the VPN were up is a VPN-bound one now down.

        That is the first instance in priority order that is OK, or not contacted only because
        the gate is down. While a reconnect command works, files wait for it.
        """
        with self._lock:
            vpn_up = self._vpn is None or self._vpn.status == GateStatus.UP
            for inst in self._instances:
                status = self._states[inst.name].status
                if status == InstanceStatus.VPN_DOWN:  # also just after the gate came back, until probed
                    return True
                if status == InstanceStatus.OK:
                    return inst.requires_vpn and not vpn_up
            return False

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
                    status=(shown := self.shown(s := self._states[inst.name]))[0],
                    detail=shown[1],
                    since=shown[2],
                    requires_vpn=inst.requires_vpn,
                    webapi=s.version,
                    last_error=s.last_error,
                )
                for inst in self._instances
            ]

    def summary(self) -> str:
        """One line for systemd's STATUS=, e.g. ``primary VPN_DOWN · secondary OK``."""
        with self._lock:
            return " · ".join(f"{i.name} {self.shown(self._states[i.name])[0]}" for i in self._instances)


def _update(state: _State, status: str, detail: str, ok: str) -> str | None:
    """Apply a status; return the old one if it changed."""
    old = state.status
    state.detail = detail
    if status != ok:
        state.last_error = f"{status}: {detail}" if detail else status
    if status == old:
        return None
    state.status = status
    state.since = now_iso()
    return old
