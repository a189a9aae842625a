"""The latest gate and instance statuses: one locked record that the prober writes and the loop reads."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from magnetd import logs
from magnetd.balance.strategy import Verdict
from magnetd.clock import now_iso
from magnetd.config import Instance
from magnetd.delivery.qbittorrent import InstanceError
from magnetd.health.advice import NEEDS_CONFIG, failure_detail
from magnetd.health.gatespec import GateSpec
from magnetd.model import GateStatus, InstanceStatus
from magnetd.records.status import InstanceView

log = logs.get(__name__)

FRESH = 1.0
"""Seconds a gate's result stays current: an older one is read again before a VPN-bound
instance is contacted (a batch about to go, a failed instance about to be re-probed)."""
GateResult = tuple[GateStatus, str]


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
    app_version: str | None = None  # qBittorrent's own (app/version)
    last_error: str | None = None
    limit: tuple[str, str, str] | None = None  # (status, detail, since) of a limit while probed OK


class Health:
    """The latest gate and instance statuses; every change is logged and wakes the supervisor.

    ``single`` names the gate of a ``vpn`` written as one mapping: ``status --json`` shows it as ``vpn``.
    """

    def __init__(
        self,
        instances: Sequence[Instance],
        gates: Sequence[GateSpec] = (),
        wake: Callable[[], None] = lambda: None,
        observer: Observer | None = None,
        single: str | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._observer: Observer = observer or _Nobody()
        self._instances = list(instances)
        self._states = {inst.name: _State() for inst in instances}
        self._named = {inst.name: inst for inst in instances}
        self._gates = {g.name: _State() for g in gates}
        self._kinds = {g.name: str(g.check) for g in gates}
        self._checked = dict.fromkeys(self._gates, 0.0)
        self.single = single
        self.wake = wake
        self.generation = 0  # grows with every change of status: a new snapshot is due
        self.changed = threading.Event()  # set at every change of status: wakes the prober

    def check_gate(self, name: str, check: Callable[[], GateResult]) -> GateResult:
        """Run one gate's ``check`` and keep its result; the result now held is returned.

        The loop's quick check and the prober's may overlap. A result read before a link
        went down must not overwrite one read after it, so a result is kept only if no
        check that began later was kept meanwhile.
        """
        started = time.monotonic()
        status, detail = check()
        changed = None
        with self._lock:
            state = self._gates[name]
            superseded = started < self._checked[name]
            if not superseded:
                self._checked[name] = started
                changed = _update(state, status, detail, ok=GateStatus.UP)
            held = GateStatus(state.status), state.detail
        if superseded:
            log.debug("gate_result_superseded", gateway=name, status=status, detail=detail)
        elif changed:
            self._changed()
            level = log.info if status == GateStatus.UP else log.warning
            level("vpn_status_changed", gateway=name, old=changed, status=status, detail=detail)
            self._observer.gate_changed(name, status, detail)
            if status != GateStatus.UP:
                self._block_dependents(name)
            self.wake()
        return held

    def _block_dependents(self, gate: str) -> None:
        """Instances shown OK that need ``gate``, now down, become VPN_DOWN with its reason."""
        with self._lock:
            blocked = [
                (inst.name, why)
                for inst in self._instances
                if gate in inst.requires
                and self._states[inst.name].status == InstanceStatus.OK
                and (why := self._blocked(inst.requires)) is not None
            ]
        for name, why in blocked:
            self.set_instance(name, InstanceStatus.VPN_DOWN, why)

    def _changed(self) -> None:
        with self._lock:
            self.generation += 1
        self.changed.set()

    def _down(self, names: Iterable[str] | None = None) -> list[str]:
        wanted = set(self._gates if names is None else names)
        return [n for n, s in self._gates.items() if n in wanted and s.status != GateStatus.UP]

    def stale_gates(self, instances: Iterable[Instance]) -> list[str]:
        """The gates ``instances`` need whose last result is older than :data:`FRESH`, sorted."""
        oldest = time.monotonic() - FRESH
        with self._lock:
            return sorted({n for inst in instances for n in inst.requires if self._checked[n] < oldest})

    def blocked(self, inst: Instance) -> str | None:
        """Why ``inst`` may not be contacted because of its gates, or None."""
        with self._lock:
            return self._blocked(inst.requires)

    def _blocked(self, requires: Iterable[str]) -> str | None:
        down = self._down(requires)
        if not down:
            return None
        return "; ".join(f"VPN gate {n} is {self._gates[n].status}: {self._gates[n].detail}" for n in down)

    def set_instance(
        self, name: str, status: str, detail: str = "", version: str | None = None, app: str | None = None
    ) -> None:
        with self._lock:
            state = self._states[name]
            if status == InstanceStatus.OK and (why := self._blocked(self._named[name].requires)) is not None:
                status, detail = InstanceStatus.VPN_DOWN, why  # a gate went down during the probe
            changed = _update(state, status, detail, ok=InstanceStatus.OK)
            if version:
                state.version = version
            if app:
                state.app_version = app
        if changed:
            self._changed()
            level = log.info if status == InstanceStatus.OK else log.warning
            level("instance_status_changed", instance=name, old=changed, status=status, detail=detail)
            self._observer.instance_changed(name, status, detail)
            self.wake()

    def set_failure(self, name: str, error: InstanceError) -> None:
        """Record an instance's error, with what to do about it; its raw text goes to the debug log."""
        if error.raw:
            log.debug("instance_error", instance=name, status=error.status, raw=error.raw)
        inst = self._named[name]
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
        """Instances that are OK now, in priority order (VPN-bound ones only while their gates are up)."""
        with self._lock:
            return [
                inst
                for inst in self._instances
                if self._states[inst.name].status == InstanceStatus.OK and not self._down(inst.requires)
            ]

    def not_ok(self) -> tuple[list[str], list[Instance]]:
        """Gates not UP, and instances not OK that a quick re-check may bring back (no failed login)."""
        with self._lock:
            gates = self._down()
            instances = [
                i
                for i in self._instances
                if self._states[i.name].status != InstanceStatus.OK
                and self._states[i.name].status not in NEEDS_CONFIG
            ]
            return gates, instances

    def first_choice_needs_vpn(self) -> bool:
        """Whether the instance that would get files if the VPN were up is a VPN-bound one now down.

        That is the first instance in priority order that is OK, or not contacted only because
        the gate is down. While a reconnect command works, files wait for it.
        """
        with self._lock:
            for inst in self._instances:
                status = self._states[inst.name].status
                if status == InstanceStatus.VPN_DOWN:  # also just after the gate came back, until probed
                    return True
                if status == InstanceStatus.OK:
                    return bool(self._down(inst.requires))
            return False

    def vpn_view(self) -> dict[str, Any] | None:
        """The single gate (``vpn`` as one mapping) as ``status --json`` always showed it, or None."""
        with self._lock:
            if self.single is None:
                return None
            gate = self._gates[self.single]
            return {"gateway": self.single, "status": gate.status, "detail": gate.detail, "since": gate.since}

    def gate_views(self) -> list[dict[str, Any]] | None:
        """Every gate for ``status --json``'s ``gates``, or None when none is configured."""
        with self._lock:
            if not self._gates:
                return None
            return [
                {"name": n, "check": self._kinds[n], "status": s.status, "detail": s.detail, "since": s.since}
                for n, s in self._gates.items()
            ]

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
                    qbittorrent=s.app_version,
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
