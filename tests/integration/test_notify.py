"""Notifications end to end: a real daemon, real qbittorrent-nox, real receivers and commands.

The receivers are HTTP servers on 127.0.0.1 (tests/receiver.py); the Apprise
target is a ``json://`` URL pointing at one of them; the command target is a
script this test writes.
"""

from __future__ import annotations

import json
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemon import Daemon, drop, instance, wait_for
from tests.integration.conftest import magnet
from tests.netns import Gateway
from tests.qbt import Qbt
from tests.receiver import Receiver


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    made: list[Receiver] = []
    yield made
    for receiver in made:
        receiver.close()


def receiver(made: list[Receiver], **answers: Any) -> Receiver:
    made.append(Receiver(**answers))
    return made[-1]


def script(folder: Path) -> tuple[Path, Path]:
    """A command target that appends the event JSON it gets on stdin, and its environment, to a file."""
    out = folder / "command-events.jsonl"
    path = folder / "on-event"
    path.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "body = json.load(sys.stdin)\n"
        "body['env'] = {k: v for k, v in os.environ.items() if k.startswith('MAGNETD_')}\n"
        f"open({str(out)!r}, 'a').write(json.dumps(body) + '\\n')\n",
        encoding="utf-8",
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path, out


def lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def events(receiver: Receiver, name: str | None = None) -> list[dict[str, Any]]:
    bodies = [r.json() for r in receiver.requests]
    return [b for b in bodies if name is None or b["event"] == name]


def notify_daemon(root: Path, qbt: Qbt, targets: list[dict[str, Any]], **notify: Any) -> Daemon:
    return Daemon(
        root,
        [instance("local", qbt.url, qbt.password)],
        notify={"digest_seconds": 1, **notify, "targets": targets},
    )


def test_every_kind_of_target_gets_the_test_and_one_digest_of_ten_failures(
    tmp_path: Path, qbt: Qbt, receivers: list[Receiver]
) -> None:
    hook, apprise = receiver(receivers), receiver(receivers)
    command, out = script(tmp_path)
    targets: list[dict[str, Any]] = [
        {"name": "automation", "webhook": hook.url, "headers_env": {"X-Token": "HOOK_TOKEN"}},
        {"name": "phone", "apprise": f"json://127.0.0.1:{apprise.port}/apprise", "events": ["file_failed"]},
        {"name": "script", "command": [str(command)], "events": ["file_failed"]},
    ]
    daemon = notify_daemon(tmp_path / "magnetd", qbt, targets, digest_seconds=3)
    daemon.env["HOOK_TOKEN"] = "s3cret-hook-token"

    tested = daemon.command("notify", "--test")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert [line.split()[:2] for line in tested.stdout.splitlines()] == [
        ["automation", "delivered"],
        ["phone", "delivered"],
        ["script", "delivered"],
    ]
    (test_request,) = hook.wait_for(1)
    assert test_request.headers["X-Magnetd-Event"] == "test"
    assert test_request.headers["X-Token"] == "s3cret-hook-token"
    body = test_request.json()
    assert set(body) == {"event", "id", "timestamp", "host", "version", "title", "message", "data"}
    assert apprise.wait_for(1)[0].json()["title"] == "magnetd: test"
    assert lines(out)[0]["event"] == "test" and lines(out)[0]["env"]["MAGNETD_EVENT"] == "test"

    daemon.start()
    with daemon:
        for index in range(10):
            drop(daemon.inbox, f"bad-{index}.magnet", f"ftp://example.invalid/{index}\n")
        wait_for(lambda: len(events(hook, "file_failed")) == 1, 20, "one file_failed digest at the webhook")
        digest = events(hook, "file_failed")[0]
        assert digest["data"]["count"] == 10
        assert sorted(f["file"] for f in digest["data"]["files"]) == sorted(
            f"bad-{i}.magnet" for i in range(10)
        )
        assert all(f["reason"] == "not_magnet" for f in digest["data"]["files"])
        wait_for(lambda: len(apprise.requests) == 2, 10, "the digest at the Apprise target")
        assert "bad-9.magnet: not_magnet" in apprise.requests[1].json()["message"]
        wait_for(lambda: len(lines(out)) == 2, 10, "the digest at the command target")
        assert lines(out)[1]["data"]["count"] == 10
        time.sleep(4)  # a second window: nothing more arrives
        assert len(events(hook, "file_failed")) == 1 and len(lines(out)) == 2
        assert "s3cret-hook-token" not in daemon.output()


def test_delivery_retries_5xx_not_4xx_and_a_slow_receiver_never_delays_sends(
    tmp_path: Path, qbt: Qbt, receivers: list[Receiver]
) -> None:
    flaky = receiver(receivers, codes=[500, 500])
    missing = receiver(receivers, default=404)
    slow = receiver(receivers, hold=20.0)
    targets = [
        {"name": name, "webhook": r.url, "events": ["file_sent"]}
        for name, r in (("flaky", flaky), ("missing", missing), ("slow", slow))
    ]
    daemon = notify_daemon(tmp_path / "magnetd", qbt, targets, digest_seconds=0).start()
    with daemon:
        link, _ = magnet("notify-first")
        drop(daemon.inbox, "first.magnet", link)
        tries = flaky.wait_for(3, timeout=30)
        assert [t.json()["id"] for t in tries] == [tries[0].json()["id"]] * 3, "retries keep the id"
        slow.wait_for(1)  # held for 20 s from here on
        for index in range(3):
            link, infohash = magnet(f"notify-later-{index}")
            dropped = time.monotonic()
            drop(daemon.inbox, f"later-{index}.magnet", link)
            wait_for(lambda: listed(qbt, infohash), 10, "the magnet in qBittorrent")  # noqa: B023
            assert time.monotonic() - dropped < 3.0, "a slow notification target delayed a send"
        wait_for(
            lambda: len(daemon.events("notify_failed")) == len(missing.requests), 10, "every 404 reported"
        )
        ids = [r.json()["id"] for r in missing.requests]
        assert len(ids) == len(set(ids)) >= 1, "a 4xx is not retried"
        assert {(e["target"], e["tries"]) for e in daemon.events("notify_failed")} == {("missing", 1)}
        slow.release()


def test_vpn_flaps_are_folded_and_a_hold_is_told_once(
    tmp_path: Path, two_qbts: tuple[Qbt, Qbt], gateway: Gateway, receivers: list[Receiver]
) -> None:
    primary, secondary = two_qbts
    hook = receiver(receivers)
    daemon = Daemon(
        tmp_path / "magnetd",
        [
            instance("primary", primary.url, primary.password, requires_vpn=True),
            instance("secondary", secondary.url, secondary.password),
        ],
        vpn={"gateway": gateway.address, "timeout": 0.3, "count": 1},
        notify={
            "digest_seconds": 1,
            "flap_seconds": 6,
            "held_after": 3,
            "targets": [{"name": "hook", "webhook": hook.url}],
        },
    ).start()
    with daemon:
        gateway.down()
        wait_for(lambda: events(hook, "vpn_down"), 20, "vpn_down")
        gateway.up()
        wait_for(lambda: events(hook, "vpn_up"), 20, "vpn_up once the flap window ended")
        assert [b["event"] for b in events(hook)] == ["vpn_down", "vpn_up"], (
            "VPN_DOWN of an instance is the gate's news"
        )

        before = len(events(hook))
        time.sleep(6)  # past the flap window: the next change is told at once
        for _ in range(10):
            gateway.down()
            time.sleep(1.0)
            gateway.up()
            time.sleep(1.0)
        time.sleep(8)  # the last window ends
        flaps = [b["event"] for b in events(hook)[before:]]
        assert 2 <= len(flaps) <= 8, f"ten flaps gave {len(flaps)} messages: {flaps}"
        assert flaps[-1] == "vpn_up", "the last message tells the state it ended in"

        secondary.stop()
        wait_for(lambda: events(hook, "instance_down"), 20, "instance_down")
        assert events(hook, "instance_down")[0]["data"]["instance"] == "secondary"
        gateway.down()

        def primary_vpn_down() -> bool:
            return any(
                i["status"] == "VPN_DOWN" for i in daemon.status()["instances"] if i["name"] == "primary"
            )

        wait_for(primary_vpn_down, 20, "primary VPN_DOWN")
        held = {}
        for index in range(5):
            link, infohash = magnet(f"held-{index}")
            drop(daemon.inbox, f"held-{index}.magnet", link)
            held[infohash] = f"held-{index}.magnet"
        wait_for(lambda: events(hook, "holding"), 20, "holding")
        wait_for(lambda: events(hook, "held_too_long"), 20, "held_too_long")
        gateway.up()
        wait_for(lambda: events(hook, "drained"), 30, "drained")
        drained = events(hook, "drained")[0]["data"]
        assert drained["files"] == 5 and drained["magnets"] == 5
        assert len(events(hook, "held_too_long")) == 1
        api = primary.api()
        assert api.login()
        assert {t["hash"] for t in api.torrents(hashes="|".join(held))} == set(held)


def reconnect_daemon(
    root: Path, two_qbts: tuple[Qbt, Qbt], gateway: Gateway, command: list[str], wait: float
) -> Daemon:
    primary, secondary = two_qbts
    return Daemon(
        root,
        [
            instance("primary", primary.url, primary.password, requires_vpn=True),
            instance("secondary", secondary.url, secondary.password),
        ],
        vpn={
            "gateway": gateway.address,
            "timeout": 0.3,
            "count": 1,
            "reconnect_command": command,
            "reconnect_wait": wait,
        },
        probe_interval=1,
    )


def listed(qbt: Qbt, infohash: str) -> bool:
    api = qbt.api()
    return api.login() and bool(api.torrents(hashes=infohash))


def test_a_reconnect_that_works_keeps_files_for_the_vpn_instance(
    tmp_path: Path, two_qbts: tuple[Qbt, Qbt], gateway: Gateway
) -> None:
    primary, secondary = two_qbts
    ip = f"sleep 2; ip -n {gateway.namespace} link set {gateway.remote_if} up"
    daemon = reconnect_daemon(tmp_path / "magnetd", two_qbts, gateway, ["sh", "-c", ip], 20).start()
    with daemon:
        gateway.down()
        wait_for(lambda: daemon.events("vpn_reconnect_started"), 20, "the reconnect command to start")
        link, infohash = magnet("reconnected")
        drop(daemon.inbox, "during.magnet", link)
        wait_for(lambda: listed(primary, infohash), 30, "the file at the VPN-bound instance")
        assert not listed(secondary, infohash), "the file went to the fallback during the reconnect"
        (ran,) = daemon.events("vpn_reconnect")
        assert ran["exit_code"] == 0


def test_a_reconnect_that_fails_fails_over_after_reconnect_wait(
    tmp_path: Path, two_qbts: tuple[Qbt, Qbt], gateway: Gateway
) -> None:
    primary, secondary = two_qbts
    daemon = reconnect_daemon(tmp_path / "magnetd", two_qbts, gateway, ["true"], 6).start()
    with daemon:
        gateway.down()
        wait_for(lambda: daemon.events("vpn_reconnect_started"), 20, "the reconnect command to start")
        started = time.monotonic()
        link, infohash = magnet("failed-over")
        drop(daemon.inbox, "after.magnet", link)
        time.sleep(3)
        assert not listed(secondary, infohash), "failed over before reconnect_wait"
        wait_for(lambda: listed(secondary, infohash), 20, "the file at the fallback")
        assert time.monotonic() - started >= 5.0
        assert not listed(primary, infohash)
