"""Real faults: a VPN gateway cut in a network namespace, instances stopped, the daemon SIGKILLed.

Nothing here is mocked: two real qbittorrent-nox instances, a gateway host
behind a veth pair, and the daemon as a subprocess.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path

from tests.daemon import Daemon, drop, instance, wait_for
from tests.integration.conftest import magnet
from tests.netns import Gateway
from tests.qbt import Qbt, need_qbt
from tests.tcpproxy import CountingProxy


def present(qbt: Qbt, hashes: list[str] | set[str]) -> set[str]:
    api = qbt.api()
    api.login()
    return {t["hash"] for t in api.torrents(hashes="|".join(hashes))}


def statuses(daemon: Daemon) -> dict[str, str]:
    snap = daemon.status()
    found = {i["name"]: i["status"] for i in snap["instances"]}
    if snap.get("vpn"):
        found["vpn"] = snap["vpn"]["status"]
    return found


def drop_many(daemon: Daemon, count: int, prefix: str) -> dict[str, str]:
    """``count`` single-magnet files; returns name → infohash."""
    names = {}
    for index in range(count):
        link, infohash = magnet(f"{prefix}{index}")
        name = f"{prefix}-{index:05d}.magnet"
        drop(daemon.inbox, name, link)
        names[name] = infohash
    return names


def exactly_once_in_sent(daemon: Daemon, names: dict[str, str]) -> None:
    files = daemon.files(daemon.sent)
    assert sorted(files) == sorted(names), "every file in sent/ exactly once, under its own name"
    assert daemon.files(daemon.failed) == []


def test_vpn_gate_failover_hold_and_drain(
    tmp_path: Path, two_qbts: tuple[Qbt, Qbt], gateway: Gateway
) -> None:
    primary, secondary = two_qbts
    proxy = CountingProxy(primary.port)
    daemon = Daemon(
        tmp_path / "magnetd",
        [
            instance("primary", proxy.url, primary.password, requires_vpn=True),
            instance("secondary", secondary.url, secondary.password),
        ],
        vpn={"gateway": gateway.address, "timeout": 0.3, "count": 1},
    ).start()
    with daemon, contextlib.closing(proxy):
        # VPN up: the primary gets the magnet.
        link, h_up = magnet("vpn-up")
        drop(daemon.inbox, "up.magnet", link)
        wait_for(lambda: h_up in present(primary, [h_up]), 20, "magnet in primary")
        assert not present(secondary, [h_up])
        wait_for(lambda: (daemon.sent / "up.magnet").exists(), 10, "up.magnet in sent/")

        # VPN down: the secondary gets it, and the primary no traffic at all.
        gateway.down()
        wait_for(lambda: statuses(daemon).get("primary") == "VPN_DOWN", 20, "primary VPN_DOWN")
        assert statuses(daemon)["vpn"] == "DOWN"
        before = proxy.traffic()
        link, h_down = magnet("vpn-down")
        drop(daemon.inbox, "down.magnet", link)
        wait_for(lambda: h_down in present(secondary, [h_down]), 20, "magnet in secondary")
        wait_for(lambda: (daemon.sent / "down.magnet").exists(), 10, "down.magnet in sent/")
        assert proxy.traffic()[1] == before[1], "bytes reached the VPN-bound instance while the VPN was down"
        assert not present(primary, [h_down])

        # The secondary stops too: files are held in the inbox, none failed.
        secondary.stop()
        wait_for(lambda: statuses(daemon).get("secondary") == "UNREACHABLE", 20, "secondary UNREACHABLE")
        held = drop_many(daemon, 5, "held")
        wait_for(lambda: daemon.status()["held"] == 5, 20, "five files held")
        snap = daemon.status()
        assert snap["inbox"] == 5 and snap["oldest_waiting_age"] is not None
        assert sorted(daemon.files(daemon.inbox)) == sorted(held)
        assert daemon.files(daemon.failed) == []
        assert proxy.traffic()[1] == before[1]

        # VPN back: everything drains to the primary.
        gateway.up()
        wait_for(lambda: present(primary, set(held.values())) == set(held.values()), 30, "held files drained")
        wait_for(lambda: daemon.files(daemon.inbox) == [], 10, "inbox empty")
        assert daemon.files(daemon.failed) == []
        assert daemon.events("vpn_status_changed")
        changes = {(e["instance"], e["status"]) for e in daemon.events("instance_status_changed")}
        assert {("primary", "VPN_DOWN"), ("primary", "OK"), ("secondary", "UNREACHABLE")} <= changes
        assert daemon.stop() == 0


@contextlib.contextmanager
def small_batches(tmp_path: Path) -> Iterator[tuple[Qbt, Daemon]]:
    """One real instance and a daemon (not started) sending 25 magnets per batch: many batches."""
    need_qbt()
    with (
        Qbt(tmp_path / "qbt") as qbt,
        Daemon(
            tmp_path / "magnetd", [instance("local", qbt.url, qbt.password)], limits={"batch_size": 25}
        ) as daemon,
    ):
        yield qbt, daemon


def test_sigkill_mid_drain_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    with small_batches(tmp_path) as (qbt, daemon):
        names = drop_many(daemon, 1200, "crash")
        daemon.start(wait=False)
        wait_for(
            lambda: len(list(daemon.sent.glob("*.magnet"))) >= 1 if daemon.sent.exists() else False,
            60,
            "the drain to start",
        )
        daemon.kill()
        done_at_kill = len(daemon.files(daemon.sent))
        assert 0 < done_at_kill < len(names), "the kill must land mid-drain"
        daemon.start(wait=False)
        wait_for(lambda: len(daemon.files(daemon.sent)) >= len(names), 120, "all files in sent/")
        assert daemon.stop() == 0
        exactly_once_in_sent(daemon, names)
        assert present(qbt, set(names.values())) == set(names.values())


def test_qbittorrent_stopped_mid_drain_holds_then_drains(tmp_path: Path) -> None:
    with small_batches(tmp_path) as (qbt, daemon):
        names = drop_many(daemon, 1000, "outage")
        daemon.start(wait=False)
        wait_for(lambda: daemon.sent.exists() and any(daemon.sent.iterdir()), 60, "the drain to start")
        qbt.stop()
        wait_for(lambda: daemon.events("files_held"), 30, "files held")
        assert len(daemon.files(daemon.inbox)) > 0
        assert daemon.files(daemon.failed) == []
        qbt.start()
        wait_for(lambda: len(daemon.files(daemon.sent)) >= len(names), 120, "all files in sent/")
        exactly_once_in_sent(daemon, names)
        # adds qBittorrent accepted while shutting down, then never saved, are added again
        wanted = set(names.values())
        wait_for(lambda: present(qbt, wanted) == wanted, 30, "every magnet in qBittorrent")
        assert not daemon.events("magnets_lost")
        assert daemon.stop() == 0


def test_wrong_password_does_not_get_the_ip_banned(tmp_path: Path) -> None:
    need_qbt()
    with (
        Qbt(tmp_path / "qbt") as qbt,
        Daemon(
            tmp_path / "magnetd", [instance("local", qbt.url, "wrong-password")], probe_interval=0.2
        ).start() as daemon,
    ):
        wait_for(lambda: statuses(daemon).get("local") == "AUTH_FAILED", 20, "AUTH_FAILED")
        drop(daemon.inbox, "waits.magnet", magnet()[0])
        wait_for(lambda: daemon.status()["held"] == 1, 10, "file held")
        time.sleep(3)  # ≈ 15 more probe rounds at probe_interval 0.2
        assert statuses(daemon)["local"] == "AUTH_FAILED"
        failures = re.findall(r"WebAPI login failure", qbt.api().log_text())
        assert 1 <= len(failures) <= 2, failures
        assert "wrong-password" not in daemon.output()
        assert qbt.api().login(), "127.0.0.1 must not be banned"
        assert daemon.files(daemon.failed) == []
        assert daemon.stop() == 0


def folder_of_magnets(parent: Path, count: int) -> Path:
    """``count`` magnet files in a new folder under ``parent``, ready to be moved in at once."""
    folder = parent / "arriving"
    for index in range(count):
        drop(folder, f"held-{index}.magnet", magnet(f"held{index}")[0])
    return folder


def only_files_held(daemon: Daemon, files: int) -> None:
    """The daemon holds ``files`` files and logged exactly one ``files_held`` event, for all of them."""
    wait_for(lambda: daemon.status()["held"] == files, 30, f"{files} files held")
    time.sleep(1.5)  # batches still with the courier fail over too: give them time to log
    held = daemon.events("files_held")
    assert [e["files"] for e in held] == [files], held
    assert held[0]["reason"] == "no healthy instance" and held[0]["logger"] == "magnetd.service.hold"
    assert len(daemon.files(daemon.inbox)) == files and daemon.files(daemon.failed) == []


def test_an_instance_stopped_under_many_batches_logs_one_files_held_for_the_whole_inbox(
    tmp_path: Path,
) -> None:
    """One batch per file: each batch used to log its own `files_held` with `files=1`."""
    need_qbt()
    with (
        Qbt(tmp_path / "qbt") as qbt,
        Daemon(
            tmp_path / "magnetd",
            [instance("local", qbt.url, qbt.password)],
            limits={"batch_size": 1},
            probe_interval=3600,  # only the failing batches tell the daemon the instance is gone
        ) as daemon,
    ):
        daemon.start()
        assert statuses(daemon)["local"] == "OK"
        qbt.stop()
        folder = folder_of_magnets(tmp_path, 5)
        folder.rename(daemon.inbox / folder.name)  # all five arrive with one event
        only_files_held(daemon, 5)
        assert daemon.events("batch_failover")
        assert daemon.stop() == 0


def test_an_unreachable_instance_at_start_logs_one_files_held_for_the_whole_inbox(tmp_path: Path) -> None:
    with Daemon(tmp_path / "magnetd", [instance("local", "http://127.0.0.1:9/", "pw")]) as daemon:
        folder = folder_of_magnets(tmp_path, 5)
        daemon.inbox.mkdir(parents=True)
        folder.rename(daemon.inbox / folder.name)
        daemon.start()
        only_files_held(daemon, 5)
        drop(daemon.inbox, "later.magnet", magnet("later")[0])
        wait_for(lambda: daemon.status()["inbox"] == 6, 20, "the later file noted")
        time.sleep(1)  # ≈ 2 probe rounds: still the same hold, no second event
        assert len(daemon.events("files_held")) == 1
        assert daemon.stop() == 0
