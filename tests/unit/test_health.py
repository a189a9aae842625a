"""Health: the VPN gate's ping modes and statuses, probes, and the priority order."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import icmplib
import pytest
import structlog
from structlog.testing import capture_logs

from magnetd.clock import parse_iso
from magnetd.config import Instance, Secret, Vpn
from magnetd.delivery.connection import BACKOFF_FIRST
from magnetd.delivery.qbittorrent import InstanceError
from magnetd.health.advice import duration
from magnetd.health.gate import VpnGate
from magnetd.health.gates import Gates, PingCheck
from magnetd.health.gatespec import CheckKind, GateSpec
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
        Instance("primary", "http://p/", "u", Secret("p"), requires_vpn=True, requires=frozenset({"gw"})),
        Instance("secondary", "http://s/", "u", Secret("p")),
        Instance("empty", "http://e/", "u", Secret("")),
    ]
    clients = {"primary": FakeClient(), "secondary": FakeClient(), "empty": FakeClient()}
    spec = GateSpec("gw", CheckKind.GATEWAY, "10.0.0.1")
    health = Health(instances, [spec])
    gates = Gates([spec], make=lambda s: PingCheck(s, pinger=lambda a, **k: Host(False)))
    Prober(instances, clients, health, gates, 1).round()
    views = {v.name: v for v in health.views()}
    assert views["primary"].status == InstanceStatus.VPN_DOWN and clients["primary"].calls["version"] == 0
    assert views["secondary"].status == InstanceStatus.OK and views["secondary"].webapi == "2.8.19"
    assert views["empty"].status == InstanceStatus.NOT_CONFIGURED and clients["empty"].calls["version"] == 0
    assert [i.name for i in health.usable()] == ["secondary"]
    assert health.summary() == "primary VPN_DOWN · secondary OK · empty NOT_CONFIGURED"


def test_probe_errors_become_statuses_with_last_error() -> None:
    instances = [Instance("a", "http://a/", "u", Secret("p"))]
    health = Health(instances)
    client = FakeClient(fail=InstanceStatus.AUTH_FAILED, detail="wrong password")
    Prober(instances, {"a": client}, health, None, 1).round()
    view = health.views()[0]
    assert view.status == "AUTH_FAILED" and view.last_error == f"AUTH_FAILED: {view.detail}"
    assert view.detail.startswith("wrong password; fix the password in the config")
    assert health.usable() == []
    assert health.needing_config() == instances


@pytest.fixture
def events() -> Iterator[list[MutableMapping[str, Any]]]:
    """Every event logged meanwhile, debug included."""
    structlog.reset_defaults()
    with capture_logs() as captured:
        yield captured


REFUSED = "qBittorrent refused the username or password"
SOURCES = {
    "password_file": ("password_file /etc/magnetd/primary.password", "save the password file or the config"),
    "password_env": ("password_env QBT_PASSWORD", "restart it with the right value"),
    "password_credential": ("password_credential qbt-primary", "`systemctl restart magnetd`"),
    "password": ("password in /etc/magnetd/magnetd.yaml", "fix the password in the config and save it"),
}


def probe_failing(inst: Instance, error: InstanceError) -> Health:
    health = Health([inst])
    Prober([inst], {inst.name: FakeClient(error)}, health, None, 1).round()
    return health


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_refused_login_says_which_source_when_and_how_to_retry_now(
    source: str, events: list[MutableMapping[str, Any]]
) -> None:
    origin, fix = SOURCES[source]
    file = Path("/etc/magnetd/primary.password") if source == "password_file" else None
    inst = Instance("primary", "http://p/", "u", Secret("hunter2-pw"), source, origin, file)
    error = InstanceError("AUTH_FAILED", f"{REFUSED}; next login in 600 s", reason=REFUSED, retry_in=600)
    before = dt.datetime.now(dt.UTC)
    health = probe_failing(inst, error)
    detail = health.views()[0].detail
    assert detail.startswith(f"{REFUSED} (password from {origin}); next login attempt at ")
    found = re.search(r"at (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ), in 10 min", detail)
    assert found, detail
    assert abs((parse_iso(found.group(1)) - before).total_seconds() - BACKOFF_FIRST) < 5
    assert fix in detail
    assert ("retry at once" in detail) == (source != "password_credential")
    assert "hunter2-pw" not in detail
    changed = [e for e in events if e["event"] == "instance_status_changed"]
    assert [(e["status"], e["detail"]) for e in changed] == [("AUTH_FAILED", detail)]


def test_banned_says_when_qbittorrent_lifts_the_ban() -> None:
    inst = Instance("a", "http://a/", "u", Secret("p"), "password_env", "password_env QBT_PASSWORD")
    reason = "qBittorrent refuses logins from here: Your IP address has been banned"
    error = InstanceError("BANNED", reason, reason=reason, retry_in=1200)
    detail = probe_failing(inst, error).views()[0].detail
    assert detail.startswith(f"{reason} (password from password_env QBT_PASSWORD); next login attempt at ")
    assert "in 20 min" in detail and "ban time (1 hour by default)" in detail


def test_network_errors_keep_their_short_detail_and_log_the_raw_text_at_debug(
    events: list[MutableMapping[str, Any]],
) -> None:
    inst = Instance("a", "http://127.0.0.1:1/", "u", Secret("p"))
    raw = "HTTPConnectionPool(host='127.0.0.1', port=1): Max retries exceeded"
    error = InstanceError("UNREACHABLE", "connection refused by 127.0.0.1:1", raw=raw)
    health = probe_failing(inst, error)
    assert health.views()[0].detail == "connection refused by 127.0.0.1:1"
    assert health.needing_config() == []
    debug = [e for e in events if e["event"] == "instance_error"]
    assert debug == [
        {
            "event": "instance_error",
            "log_level": "debug",
            "instance": "a",
            "status": "UNREACHABLE",
            "raw": raw,
        }
    ]


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(0.4, "0 s"), (59.6, "60 s"), (119, "119 s"), (600, "10 min"), (86400, "24 h 00 min")],
)
def test_duration(seconds: float, words: str) -> None:
    assert duration(seconds) == words
