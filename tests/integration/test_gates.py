"""Real VPN gates: a link going down or losing its address, a gluetun-like control server
stopped or killed, a public-IP leak; the VPN-bound instance gets no connection at all meanwhile.

The interface is an ``ifb`` link in the test's private network namespace (this
kernel may have no ``dummy`` module; an ifb link takes an address, goes up and
down and reports operstate ``unknown`` as WireGuard does). The control server
is a real local HTTP server (tests/gluetun.py) that wants an API key.
"""

from __future__ import annotations

import contextlib
import functools
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from magnetd.records import status as status_file
from tests.daemon import Daemon, drop, instance, wait_for
from tests.gluetun import ControlServer
from tests.integration.conftest import magnet
from tests.qbt import Qbt
from tests.realparts import need_program, need_root
from tests.tcpproxy import CountingProxy

LINK = "wglab0"
HOME = "203.0.113.7"
RECOVERY = 4.0
"""Seconds a recovery may take at probe_interval 60: recheck_interval (2 s), a probe, a status call."""


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@pytest.fixture
def link() -> Iterator[str]:
    need_root("a test network interface")
    need_program("ip")
    ip("link", "add", LINK, "type", "ifb")
    ip("addr", "add", "10.77.0.1/32", "dev", LINK)
    ip("link", "set", LINK, "up")
    yield LINK
    subprocess.run(["ip", "link", "del", LINK], check=False, capture_output=True)


def present(qbt: Qbt, infohash: str) -> bool:
    api = qbt.api()
    api.login()
    return bool(api.torrents(hashes=infohash))


def gates(daemon: Daemon) -> dict[str, tuple[str, str]]:
    return {g["name"]: (g["status"], g["detail"]) for g in daemon.status().get("gates") or []}


def status_of(daemon: Daemon, name: str) -> str:
    return str(next(i["status"] for i in daemon.status()["instances"] if i["name"] == name))


def test_each_gate_keeps_every_connection_from_the_vpn_bound_instance_while_down(
    tmp_path: Path, two_qbts: tuple[Qbt, Qbt], link: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    primary, secondary = two_qbts
    proxy = CountingProxy(primary.port)
    shown_at_add: list[dict[str, str]] = []  # what the status file said as each add reached the fallback

    def at_fallback(chunk: bytes) -> None:
        if chunk.startswith(b"POST /api/v2/torrents/add"):
            snapshot = status_file.read(daemon.state) or {}
            shown_at_add.append({g["name"]: g["status"] for g in snapshot.get("gates") or []})

    fallback = CountingProxy(secondary.port, on_send=at_fallback)
    server = ControlServer(api_key="gluetun-key-123").start()
    daemon = Daemon(
        tmp_path / "magnetd",
        [
            instance("primary", proxy.url, primary.password, requires_vpn=["wg", "gluetun", "no-leak"]),
            instance("secondary", fallback.url, secondary.password),
        ],
        probe_interval=60,
        vpn=[
            {"name": "wg", "interface": link},
            {
                "name": "gluetun",
                "http": f"{server.url}/v1/vpn/status",
                "expect": "running",
                "api_key_env": "GLUETUN_KEY",
            },
            {
                "name": "no-leak",
                "public_ip_url": f"{server.url}/v1/publicip/ip",
                "not_ip": HOME,
                "api_key_env": "GLUETUN_KEY",
            },
        ],
    )
    daemon.env["GLUETUN_KEY"] = "gluetun-key-123"

    def vpn(state: str) -> Callable[[], None]:
        return lambda: setattr(server, "vpn", state)

    def public(address: str) -> Callable[[], None]:
        return lambda: setattr(server, "public_ip", address)

    def link_cmd(*args: str) -> Callable[[], None]:
        return lambda: ip(*args)

    faults: list[tuple[str, str, Callable[[], None], Callable[[], None]]] = [
        ("wg", "is down", link_cmd("link", "set", link, "down"), link_cmd("link", "set", link, "up")),
        (
            "wg",
            "holds no address",
            link_cmd("addr", "flush", "dev", link),
            link_cmd("addr", "add", "10.77.0.1/32", "dev", link),
        ),
        ("gluetun", '"stopped"', vpn("stopped"), vpn("running")),
        ("gluetun", "cannot connect", server.stop, server.start_again),
        ("no-leak", HOME, public(HOME), public("198.51.100.20")),
    ]
    with daemon.start(), contextlib.closing(proxy), contextlib.closing(fallback), server:
        assert {name: s for name, (s, _) in gates(daemon).items()} == {
            "wg": "UP",
            "gluetun": "UP",
            "no-leak": "UP",
        }
        assert server.refused == 0, "the API key was sent as X-API-Key"
        for step, (gate, says, cut, mend) in enumerate(faults):
            link_up, h_up = magnet(f"up{step}")
            drop(daemon.inbox, f"up{step}.magnet", link_up)
            wait_for(functools.partial(present, primary, h_up), 20, f"step {step}: magnet in primary")
            wait_for((daemon.sent / f"up{step}.magnet").exists, 10, "sent")

            cut()
            time.sleep(1.2)  # older than the one-second freshness the dispatcher asks of a gate
            before = proxy.traffic()
            link_down, h_down = magnet(f"down{step}")
            drop(daemon.inbox, f"down{step}.magnet", link_down)
            wait_for(functools.partial(present, secondary, h_down), 20, f"step {step}: magnet failed over")
            wait_for((daemon.sent / f"down{step}.magnet").exists, 10, "sent")
            expected = "LEAK" if gate == "no-leak" else "DOWN"
            assert shown_at_add[-1][gate] == expected, "the status file shows why before files go elsewhere"
            status, detail = gates(daemon)[gate]
            assert status == expected and says in detail, (status, detail)
            assert status_of(daemon, "primary") == "VPN_DOWN"
            time.sleep(2.5)  # a re-check or two: still nothing may reach the instance
            assert proxy.traffic() == before, f"step {step}: a connection reached the VPN-bound instance"
            assert not present(primary, h_down)

            mended = time.monotonic()
            mend()
            wait_for(lambda: status_of(daemon, "primary") == "OK", 10, f"step {step}: primary back")
            took = time.monotonic() - mended
            assert took < RECOVERY, f"step {step}: recovery took {took:.1f} s at probe_interval 60"
        assert daemon.files(daemon.failed) == []
        assert server.refused == 0
        assert "gluetun-key-123" not in daemon.output()
        assert daemon.stop() == 0


def test_files_held_for_a_stopped_vpn_leave_within_seconds_of_its_return(tmp_path: Path, qbt: Qbt) -> None:
    server = ControlServer().start()
    daemon = Daemon(
        tmp_path / "magnetd",
        [instance("local", qbt.url, qbt.password, requires_vpn="gluetun")],
        probe_interval=60,
        vpn=[{"name": "gluetun", "http": f"{server.url}/v1/vpn/status", "expect": "running"}],
    )
    server.vpn = "stopped"
    with daemon.start(), server:
        assert status_of(daemon, "local") == "VPN_DOWN"
        link, infohash = magnet("held")
        drop(daemon.inbox, "held.magnet", link)
        wait_for(lambda: daemon.status()["held"] == 1, 10, "the file held")
        server.vpn = "running"
        back = time.monotonic()
        wait_for(lambda: (daemon.sent / "held.magnet").exists(), 10, "the held file sent")
        took = time.monotonic() - back
        assert took < RECOVERY - 1, f"a held file left {took:.1f} s after the VPN came back"
        assert present(qbt, infohash)
        assert daemon.stop() == 0


def bind(qbt: Qbt, interface: str) -> None:
    """Bind qBittorrent's BitTorrent traffic to ``interface`` ("" for any), as users bind it to wg0."""
    api = qbt.api()
    assert api.login()
    api.request(
        "POST", "app/setPreferences", data={"json": json.dumps({"current_network_interface": interface})}
    )


def test_an_instance_bound_to_a_missing_interface_is_disconnected_and_skipped(
    tmp_path: Path, two_qbts: tuple[Qbt, Qbt]
) -> None:
    bound, fallback = two_qbts
    daemon = Daemon(
        tmp_path / "magnetd",
        [
            instance("bound", bound.url, bound.password, require_connection=True),
            instance("fallback", fallback.url, fallback.password),
        ],
    ).start()
    with daemon:

        def status_of(name: str) -> str:
            return next(str(i["status"]) for i in daemon.status()["instances"] if i["name"] == name)

        wait_for(lambda: status_of("bound") == "OK", 20, "the bound instance OK at first")
        bind(bound, "magnetd-none0")  # an interface that is not there, like a VPN tunnel gone
        wait_for(lambda: status_of("bound") == "DISCONNECTED", 20, "DISCONNECTED")
        link, away = magnet("while-disconnected")
        drop(daemon.inbox, "away.magnet", link)
        wait_for(lambda: (daemon.sent / "away.magnet").exists(), 20, "the file sent")
        other = fallback.api()
        assert other.login() and other.torrents(hashes=away)
        api = bound.api()
        assert api.login() and not api.torrents(hashes=away)

        bind(bound, "")
        wait_for(lambda: status_of("bound") == "OK", 20, "OK again once it is connected")
        link, back = magnet("connected-again")
        drop(daemon.inbox, "back.magnet", link)
        wait_for(lambda: (daemon.sent / "back.magnet").exists(), 20, "the file sent")
        assert api.torrents(hashes=back)
