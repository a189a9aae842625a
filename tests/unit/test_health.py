"""Health: the VPN gate's ping modes and statuses, probes, and the priority order."""

from __future__ import annotations

import icmplib

from magnetd.config import Instance, Secret, Vpn
from magnetd.health.gate import VpnGate
from magnetd.health.prober import Prober
from magnetd.health.state import Health
from magnetd.model import InstanceStatus
from tests.fakes import FakeClient, Host


def test_gate_falls_back_to_unprivileged_ping_and_remembers_it() -> None:
    calls: list[bool] = []

    def ping(address: str, **kwargs: object) -> Host:
        calls.append(bool(kwargs["privileged"]))
        if kwargs["privileged"]:
            raise icmplib.SocketPermissionError(True)
        return Host(True)

    gate = VpnGate(Vpn("10.0.0.1"), pinger=ping)
    assert gate.check()[0] == "UP"
    assert gate.check()[0] == "UP"
    assert calls == [True, False, False]


def test_gate_reports_ping_not_permitted_with_the_fix() -> None:
    def ping(address: str, **kwargs: object) -> Host:
        raise icmplib.SocketPermissionError(bool(kwargs["privileged"]))

    status, detail = VpnGate(Vpn("10.0.0.1"), pinger=ping).check()
    assert status == "PING_NOT_PERMITTED" and "CAP_NET_RAW" in detail and "ping_group_range" in detail


def test_gate_down_when_unanswered() -> None:
    status, _ = VpnGate(Vpn("10.0.0.1"), pinger=lambda a, **k: Host(False)).check()
    assert status == "DOWN"


def test_vpn_bound_instances_are_not_contacted_while_the_vpn_is_down() -> None:
    instances = [
        Instance("primary", "http://p/", "u", Secret("p"), requires_vpn=True),
        Instance("secondary", "http://s/", "u", Secret("p")),
        Instance("empty", "http://e/", "u", Secret("")),
    ]
    clients = {"primary": FakeClient(), "secondary": FakeClient(), "empty": FakeClient()}
    health = Health(instances, Vpn("10.0.0.1"))
    gate = VpnGate(Vpn("10.0.0.1"), pinger=lambda a, **k: Host(False))
    Prober(instances, clients, health, gate, 1).round()
    views = {v.name: v for v in health.views()}
    assert views["primary"].status == InstanceStatus.VPN_DOWN and clients["primary"].calls["version"] == 0
    assert views["secondary"].status == InstanceStatus.OK and views["secondary"].webapi == "2.8.19"
    assert views["empty"].status == InstanceStatus.NOT_CONFIGURED and clients["empty"].calls["version"] == 0
    assert [i.name for i in health.usable()] == ["secondary"]
    assert health.summary() == "primary VPN_DOWN · secondary OK · empty NOT_CONFIGURED"


def test_probe_errors_become_statuses_with_last_error() -> None:
    instances = [Instance("a", "http://a/", "u", Secret("p"))]
    health = Health(instances, None)
    client = FakeClient(fail=InstanceStatus.AUTH_FAILED, detail="wrong password")
    Prober(instances, {"a": client}, health, None, 1).round()
    view = health.views()[0]
    assert view.status == "AUTH_FAILED" and view.last_error == "AUTH_FAILED: wrong password"
    assert health.usable() == []
