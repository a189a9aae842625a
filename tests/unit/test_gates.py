"""VPN gates: the ``vpn`` list and ``requires_vpn`` names in the config, each check's answers, re-checks."""

from __future__ import annotations

import textwrap
import threading
import time
from pathlib import Path

import pytest
import requests
import responses

from magnetd import config
from magnetd.config import Instance, Secret
from magnetd.health import state
from magnetd.health.gates import Gates, HttpCheck, InterfaceCheck, PublicIpCheck, Result, public_ip
from magnetd.health.gatespec import CheckKind, GateSpec
from magnetd.health.prober import Prober
from magnetd.health.state import Health
from magnetd.model import GateStatus, InstanceStatus
from tests.fakes import FakeClient

HEAD = """\
folders: {inbox: in, sent: sent, failed: failed}
"""


def load(tmp_path: Path, body: str, environ: dict[str, str] | None = None) -> config.Config:
    path = tmp_path / "magnetd.yaml"
    path.write_text(HEAD + textwrap.dedent(body), encoding="utf-8")
    return config.load(path, environ or {})


def problems(tmp_path: Path, body: str, environ: dict[str, str] | None = None) -> dict[str, str]:
    with pytest.raises(config.ConfigError) as caught:
        load(tmp_path, body, environ)
    return {p.key: p.message for p in caught.value.problems}


def test_a_single_mapping_stays_one_gate_named_after_its_gateway(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        """\
        vpn: {gateway: 10.8.0.1, reconnect_command: ["true"]}
        instances:
          - {name: a, url: "http://a/", username: u, password: p, requires_vpn: true}
          - {name: b, url: "http://b/", username: u, password: p}
        """,
    )
    assert [(g.name, g.check, g.target) for g in cfg.gates] == [("10.8.0.1", CheckKind.GATEWAY, "10.8.0.1")]
    assert cfg.vpn is not None and cfg.vpn.gateway == "10.8.0.1" and cfg.vpn.reconnect_command == ("true",)
    assert cfg.instances[0].requires == {"10.8.0.1"} and cfg.instances[0].requires_vpn
    assert cfg.instances[1].requires == frozenset() and not cfg.instances[1].requires_vpn


def test_a_list_of_named_gates_and_requires_vpn_by_name(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        """\
        recheck_interval: 0.5
        vpn:
          - {name: wg, interface: wg0}
          - {name: gluetun, http: "http://127.0.0.1:8000/v1/vpn/status", expect: running, api_key_env: GK}
          - {name: no-leak, public_ip_url: "http://127.0.0.1:8000/v1/publicip/ip", not_ip: 203.0.113.7}
        instances:
          - {name: a, url: "http://a/", username: u, password: p, requires_vpn: wg}
          - {name: b, url: "http://b/", username: u, password: p, requires_vpn: [gluetun, no-leak]}
          - {name: c, url: "http://c/", username: u, password: p, requires_vpn: true}
          - {name: d, url: "http://d/", username: u, password: p, requires_vpn: false}
        """,
        {"GK": "the-key"},
    )
    assert cfg.vpn is None and cfg.recheck_interval == 0.5
    assert [g.check for g in cfg.gates] == [CheckKind.INTERFACE, CheckKind.HTTP, CheckKind.PUBLIC_IP]
    assert cfg.gates[1].api_key == "the-key" and "the-key" not in repr(cfg.gates[1])
    assert "the-key" in set(cfg.secrets())
    requires = [i.requires for i in cfg.instances]
    assert requires == [{"wg"}, {"gluetun", "no-leak"}, {"wg", "gluetun", "no-leak"}, frozenset()]


def test_gate_mistakes_are_each_named(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        vpn:
          - {name: two, interface: wg0, gateway: 10.0.0.1}
          - {name: none}
          - {name: leak, public_ip_url: "http://x/ip"}
          - {name: key, http: "http://x/", api_key_env: NOT_SET, reconnect_command: ["true"]}
          - {name: odd, interface: tun0, expect: running}
          - {name: bad-ip, public_ip_url: "http://x/ip", not_ip: home}
          - {interface: tun1}
        instances:
          - {name: a, url: "http://a/", username: u, password: p, requires_vpn: [two, missing]}
        """,
    )
    assert "exactly one check; gateway, interface are all set" in found["vpn[0]"]
    assert "none is set" in found["vpn[1]"]
    assert found["vpn[2].not_ip"] == "is required with public_ip_url"
    assert found["vpn[3].api_key_env"] == "environment variable NOT_SET is not set"
    assert "list of gates" in found["vpn[3].reconnect_command"]
    assert found["vpn[4].expect"] == "only goes with http"
    assert "is not an IP address" in found["vpn[5].not_ip"]
    assert "vpn[6].name" in found  # a gate in a list needs a name
    assert "'missing'" in found["instances[0].requires_vpn"]


def test_requires_vpn_true_without_a_gate_is_refused(tmp_path: Path) -> None:
    found = problems(
        tmp_path, 'instances: [{name: a, url: "http://a/", username: u, password: p, requires_vpn: true}]'
    )
    assert "no vpn gate" in found["instances[0].requires_vpn"]


def spec(kind: CheckKind, target: str, **extra: object) -> GateSpec:
    return GateSpec("g", kind, target, **extra)  # type: ignore[arg-type]


STATUS = "http://127.0.0.1:8000/v1/vpn/status?secret=s"


@responses.activate
def test_http_gate_is_up_only_on_2xx_with_the_expected_text_and_sends_the_api_key() -> None:
    check = HttpCheck(spec(CheckKind.HTTP, STATUS, expect="running", api_key="k-123"))
    responses.get(STATUS, json={"status": "running"})
    assert check.check() == (GateStatus.UP, "127.0.0.1:8000/v1/vpn/status answered 200")
    assert responses.calls[0].request.headers["X-API-Key"] == "k-123"
    responses.get(STATUS, json={"status": "stopped"})
    status, detail = check.check()
    assert status == GateStatus.DOWN and "stopped" in detail and "secret" not in detail
    responses.get(STATUS, status=401)
    status, detail = check.check()
    assert status == GateStatus.ERROR and "HTTP 401" in detail and "k-123" not in detail
    responses.get(STATUS, status=502)
    assert check.check() == (GateStatus.DOWN, "127.0.0.1:8000/v1/vpn/status answered HTTP 502")
    responses.get(STATUS, body=requests.ConnectionError("refused"))
    assert check.check() == (GateStatus.DOWN, "cannot connect to 127.0.0.1:8000/v1/vpn/status")


IP_URL = "http://127.0.0.1:8000/v1/publicip/ip"


@responses.activate
def test_public_ip_gate_is_leak_at_the_home_address_and_fails_closed() -> None:
    check = PublicIpCheck(spec(CheckKind.PUBLIC_IP, IP_URL, not_ip="203.0.113.7"))
    responses.get(IP_URL, json={"public_ip": "198.51.100.20", "country": "X"})
    assert check.check() == (GateStatus.UP, "public IP 198.51.100.20")
    responses.get(IP_URL, body="203.0.113.7\n")
    status, detail = check.check()
    assert status == GateStatus.LEAK and "203.0.113.7" in detail
    responses.get(IP_URL, body="<html>oops</html>")
    assert check.check()[0] == GateStatus.ERROR
    responses.get(IP_URL, body=requests.ConnectionError("refused"))
    assert check.check()[0] == GateStatus.DOWN


def test_public_ip_answers() -> None:
    assert public_ip('{"public_ip": "2001:db8::0001"}') == "2001:db8::1"
    assert public_ip(" 192.0.2.1 \n") == "192.0.2.1"
    assert public_ip('{"public_ip": ""}') is None
    assert public_ip("not an address") is None


def test_interface_gate_needs_the_link_up_and_an_address() -> None:
    assert InterfaceCheck(spec(CheckKind.INTERFACE, "lo")).check()[0] == GateStatus.UP
    status, detail = InterfaceCheck(spec(CheckKind.INTERFACE, "nosuch0")).check()
    assert status == GateStatus.DOWN and detail == "interface nosuch0 does not exist"


class Switch:
    """A gate check a test turns on and off; counts its calls."""

    def __init__(self, spec: GateSpec) -> None:
        self.spec = spec
        self.up = False
        self.calls = 0

    def check(self, quick: bool = False) -> Result:
        self.calls += 1
        return (GateStatus.UP, "on") if self.up else (GateStatus.DOWN, "off")


def wait(check: object, timeout: float) -> float:
    started = time.monotonic()
    while not callable(check) or not check():
        assert time.monotonic() - started < timeout, "timed out"
        time.sleep(0.01)
    return time.monotonic() - started


def test_what_is_not_ok_is_rechecked_fast_between_long_rounds_but_never_a_failed_login() -> None:
    gate = GateSpec("wg", CheckKind.INTERFACE, "wg0")
    switches: dict[str, Switch] = {}

    def make(s: GateSpec) -> Switch:
        switches[s.name] = Switch(s)
        return switches[s.name]

    bound = Instance("bound", "http://b/", "u", Secret("p"), requires_vpn=True, requires=frozenset({"wg"}))
    locked = Instance("locked", "http://l/", "u", Secret("p"))
    health = Health([bound, locked], [gate])
    clients = {"bound": FakeClient(), "locked": FakeClient(fail=InstanceStatus.AUTH_FAILED)}
    prober = Prober([bound, locked], clients, health, Gates([gate], make=make), 60, recheck=0.1)
    prober.round()
    assert [v.status for v in health.views()] == [InstanceStatus.VPN_DOWN, InstanceStatus.AUTH_FAILED]
    assert clients["bound"].calls["version"] == 0
    logins = clients["locked"].calls["version"]
    thread = threading.Thread(target=prober.run, daemon=True)
    thread.start()
    try:
        time.sleep(0.5)
        assert switches["wg"].calls >= 4, "a gate that is down is re-checked every recheck_interval"
        switches["wg"].up = True
        took = wait(lambda: health.views()[0].status == InstanceStatus.OK, 2)
        assert took < 0.5
        assert [i.name for i in health.usable()] == ["bound"]
        calls = switches["wg"].calls
        time.sleep(0.4)
        assert switches["wg"].calls == calls, "an UP gate waits for the next full round"
        assert clients["locked"].calls["version"] == logins, "a failed login is never retried fast"
    finally:
        prober.stop()


def test_require_connection_makes_a_disconnected_instance_ineligible_until_it_connects() -> None:
    strict = Instance("strict", "http://s/", "u", Secret("p"), require_connection=True)
    relaxed = Instance("relaxed", "http://r/", "u", Secret("p"))
    clients = {"strict": FakeClient(), "relaxed": FakeClient()}
    clients["strict"].connection = clients["relaxed"].connection = "disconnected"
    health = Health([strict, relaxed])
    prober = Prober([strict, relaxed], clients, health, None, 60, recheck=0.1)
    prober.round()
    assert [v.status for v in health.views()] == [InstanceStatus.DISCONNECTED, InstanceStatus.OK]
    assert "disconnected" in health.views()[0].detail
    assert [i.name for i in health.usable()] == ["relaxed"]
    assert clients["relaxed"].calls["connection_status"] == 0, "only asked where require_connection is set"
    clients["strict"].connection = "firewalled"  # no incoming connections: not a VPN failure
    prober.recheck()
    assert [i.name for i in health.usable()] == ["strict", "relaxed"]


def bound_to_wg() -> tuple[GateSpec, Instance]:
    gate = GateSpec("wg", CheckKind.INTERFACE, "wg0")
    needs = frozenset({"wg"})
    return gate, Instance("bound", "http://b/", "u", Secret("p"), requires_vpn=True, requires=needs)


def test_a_gate_result_read_before_a_newer_one_is_never_kept() -> None:
    gate, bound = bound_to_wg()
    health = Health([bound], [gate])
    reading, release = threading.Event(), threading.Event()

    def slow() -> Result:  # the prober read the link just before it went down, then stalled
        reading.set()
        release.wait(5)
        return GateStatus.UP, "wg0 10.77.0.1"

    kept: list[Result] = []
    prober = threading.Thread(target=lambda: kept.append(health.check_gate("wg", slow)))
    prober.start()
    assert reading.wait(5)
    down = (GateStatus.DOWN, "interface wg0 is down")
    assert health.check_gate("wg", lambda: down) == down  # the loop's quick check, begun later
    release.set()
    prober.join(5)
    assert kept == [down], "the stale reader is told what is held"
    assert [(g["status"], g["detail"]) for g in health.gate_views() or []] == [down]
    assert health.blocked(bound) == "VPN gate wg is DOWN: interface wg0 is down"


def test_an_instance_whose_gate_went_down_during_its_probe_is_not_shown_ok() -> None:
    gate, bound = bound_to_wg()
    health = Health([bound], [gate])
    health.check_gate("wg", lambda: (GateStatus.DOWN, "interface wg0 is down"))
    health.set_instance("bound", InstanceStatus.OK)  # a probe begun while the gate was up ends now
    view = health.views()[0]
    assert view.status == InstanceStatus.VPN_DOWN
    assert view.detail == "VPN gate wg is DOWN: interface wg0 is down"
    assert health.usable() == []
    health.check_gate("wg", lambda: (GateStatus.UP, "wg0 10.77.0.1"))
    health.set_instance("bound", InstanceStatus.OK)
    assert [i.name for i in health.usable()] == ["bound"]


def test_a_gate_found_down_shows_its_ok_instances_vpn_down_at_once_and_leaves_the_rest() -> None:
    gate, bound = bound_to_wg()
    locked = Instance("locked", "http://l/", "u", Secret("p"), requires_vpn=True, requires=bound.requires)
    free = Instance("free", "http://f/", "u", Secret("p"))
    health = Health([bound, locked, free], [gate])
    health.check_gate("wg", lambda: (GateStatus.UP, "wg0 10.77.0.1"))
    health.set_instance("bound", InstanceStatus.OK)
    health.set_instance("locked", InstanceStatus.AUTH_FAILED, "wrong password")
    health.set_instance("free", InstanceStatus.OK)
    health.check_gate("wg", lambda: (GateStatus.DOWN, "interface wg0 is down"))  # no probe after it
    views = {v.name: (v.status, v.detail) for v in health.views()}
    assert views == {
        "bound": (InstanceStatus.VPN_DOWN, "VPN gate wg is DOWN: interface wg0 is down"),
        "locked": (InstanceStatus.AUTH_FAILED, "wrong password"),  # its own reason stands
        "free": (InstanceStatus.OK, ""),
    }


def test_a_failed_vpn_bound_instance_is_reprobed_only_after_a_fresh_read_of_its_gate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate, bound = bound_to_wg()
    switch = Switch(gate)
    switch.up = True
    client = FakeClient(fail=InstanceStatus.UNREACHABLE)
    health = Health([bound], [gate])
    prober = Prober([bound], {"bound": client}, health, Gates([gate], make=lambda s: switch), 60, recheck=0.1)
    prober.round()
    assert health.views()[0].status == InstanceStatus.UNREACHABLE
    reads, probes = switch.calls, client.calls["version"]

    monkeypatch.setattr(state, "FRESH", 3600.0)  # the gate's last result still counts
    prober.recheck()
    assert (switch.calls, client.calls["version"]) == (reads, probes + 1), "a fresh UP is not read again"

    switch.up = False  # the VPN drops; the gate still shows UP from the last round
    monkeypatch.setattr(state, "FRESH", 0.0)
    prober.recheck()
    assert switch.calls == reads + 1
    assert client.calls["version"] == probes + 1, "not contacted: its gate was read first and is down"
    assert health.views()[0].status == InstanceStatus.VPN_DOWN
