"""Three real qbittorrent-nox instances: strategies, category routing and the limits.

Across every phase each magnet ends in exactly one instance and each file in sent/ exactly once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemon import Daemon, drop, instance, wait_for
from tests.integration.conftest import magnet
from tests.qbt import Qbt, need_qbt

NAMES = ("a", "b", "c")


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Qbt]]:
    need_qbt()
    root = tmp_path_factory.mktemp("three")
    servers = [Qbt(root / name) for name in NAMES]
    for server in servers:
        server.start()
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture
def qbts(three: list[Qbt]) -> list[Qbt]:
    """The three instances, running, empty, with no download queue (every started one is active)."""
    for server in three:
        if server.process is None or server.process.poll() is not None:
            server.process = None
            server.start()
        api = server.api()
        api.login()
        api.request("POST", "app/setPreferences", data={"json": json.dumps({"queueing_enabled": False})})
        api.request("POST", "torrents/delete", data={"hashes": "all", "deleteFiles": "false"})
    return three


def hashes_in(qbt: Qbt) -> set[str]:
    api = qbt.api()
    api.login()
    return {str(t["hash"]) for t in api.torrents()}


def preload(qbt: Qbt, count: int) -> set[str]:
    """``count`` started magnets (metaDL: active downloads) added behind magnetd's back."""
    api = qbt.api()
    api.login()
    added = set()
    for index in range(count):
        link, infohash = magnet(f"preload{index}")
        api.add_magnet(link, paused="false", stopped="false")
        added.add(infohash)
    wait_for(lambda: added <= hashes_in(qbt), 10, "preloaded torrents")
    return added


def daemon_for(tmp_path: Path, qbts: list[Qbt], extra: list[dict[str, Any]], **settings: Any) -> Daemon:
    entries = [instance(n, q.url, q.password, **e) for n, q, e in zip(NAMES, qbts, extra, strict=True)]
    return Daemon(tmp_path / "magnetd", entries, **settings)


def drop_many(daemon: Daemon, count: int, prefix: str, folder: str = "") -> dict[str, str]:
    """``count`` single-magnet files; relative name → infohash."""
    names = {}
    for index in range(count):
        link, infohash = magnet(f"{prefix}{index}")
        name = f"{prefix}-{index:03d}.magnet"
        drop(daemon.inbox / folder, name, link)
        names[f"{folder}/{name}" if folder else name] = infohash
    return names


def where(qbts: list[Qbt], wanted: dict[str, str]) -> dict[str, list[str]]:
    """For each instance, the wanted hashes it holds; every wanted hash in exactly one instance."""
    held = {n: hashes_in(q) & set(wanted.values()) for n, q in zip(NAMES, qbts, strict=True)}
    for infohash in wanted.values():
        assert sum(infohash in found for found in held.values()) <= 1, f"{infohash} in two instances"
    return {n: sorted(found) for n, found in held.items()}


def all_sent(daemon: Daemon, wanted: dict[str, str], timeout: float = 30) -> None:
    wait_for(lambda: set(wanted) <= set(daemon.files(daemon.sent)), timeout, "every file in sent/")


def exactly_once(daemon: Daemon, qbts: list[Qbt], wanted: dict[str, str]) -> dict[str, int]:
    sent = daemon.files(daemon.sent)
    assert sorted(sent) == sorted(set(sent)) and set(wanted) <= set(sent)
    placed = where(qbts, wanted)
    assert sum(len(v) for v in placed.values()) == len(wanted), "each magnet in exactly one instance"
    return {n: len(v) for n, v in placed.items()}


def status_of(daemon: Daemon, name: str) -> str:
    return str(next(i["status"] for i in daemon.status()["instances"] if i["name"] == name))


def test_priority_fails_over_and_fails_back(tmp_path: Path, qbts: list[Qbt]) -> None:
    with daemon_for(tmp_path, qbts, [{}, {}, {}]).start() as daemon:
        first = drop_many(daemon, 3, "one")
        all_sent(daemon, first)
        assert exactly_once(daemon, qbts, first) == {"a": 3, "b": 0, "c": 0}
        qbts[0].stop()
        wait_for(lambda: status_of(daemon, "a") != "OK", 20, "a down")
        second = drop_many(daemon, 3, "two")
        all_sent(daemon, second)
        qbts[0].process = None
        qbts[0].start()
        wait_for(lambda: status_of(daemon, "a") == "OK", 20, "a back")
        third = drop_many(daemon, 3, "three")
        all_sent(daemon, third)
        assert exactly_once(daemon, qbts, third)["a"] == 3
        assert exactly_once(daemon, qbts, second)["b"] == 3


def test_round_robin_splits_evenly_and_shares_a_stopped_ones_part(tmp_path: Path, qbts: list[Qbt]) -> None:
    daemon = daemon_for(tmp_path, qbts, [{}, {}, {}], dispatch={"strategy": "round_robin"})
    with daemon.start():
        first = drop_many(daemon, 30, "rr")
        all_sent(daemon, first)
        counts = exactly_once(daemon, qbts, first)
        assert all(9 <= n <= 11 for n in counts.values()), counts
        qbts[2].stop()
        wait_for(lambda: status_of(daemon, "c") != "OK", 20, "c down")
        second = drop_many(daemon, 20, "rest")
        all_sent(daemon, second)
        counts = _two(daemon, qbts, second)
        assert counts["a"] + counts["b"] == 20 and all(9 <= counts[n] <= 11 for n in "ab"), counts
        assert daemon.files(daemon.failed) == []


def _two(daemon: Daemon, qbts: list[Qbt], wanted: dict[str, str]) -> dict[str, int]:
    """Placement over a and b while c is stopped."""
    held = {n: hashes_in(q) & set(wanted.values()) for n, q in zip(NAMES[:2], qbts[:2], strict=True)}
    assert not held["a"] & held["b"]
    assert len(held["a"] | held["b"]) == len(wanted)
    assert sorted(set(daemon.files(daemon.sent)) & set(wanted)) == sorted(wanted)
    return {n: len(v) for n, v in held.items()}


def test_categories_route_and_an_unlisted_one_fails(tmp_path: Path, qbts: list[Qbt]) -> None:
    limits = [{"categories": ["tv"]}, {"categories": ["books"]}, {"categories": ["movies", "music"]}]
    with daemon_for(tmp_path, qbts, limits, dispatch={"strategy": "round_robin"}).start() as daemon:
        tv, books, music = (drop_many(daemon, 4, f"{c}x", c) for c in ("tv", "books", "music"))
        comics = drop_many(daemon, 2, "comic", "comics")
        bare = drop_many(daemon, 1, "bare")
        all_sent(daemon, {**tv, **books, **music})
        assert exactly_once(daemon, qbts, tv) == {"a": 4, "b": 0, "c": 0}
        assert exactly_once(daemon, qbts, books) == {"a": 0, "b": 4, "c": 0}
        assert exactly_once(daemon, qbts, music) == {"a": 0, "b": 0, "c": 4}
        unroutable = {**comics, **bare}
        wait_for(lambda: len(daemon.files(daemon.failed)) == 2 * len(unroutable), 20, "failed + .error.json")
        for name in unroutable:
            record = json.loads((daemon.failed / f"{name}.error.json").read_text(encoding="utf-8"))
            assert record["reason"] == "no_instance_for_category"
        assert where(qbts, unroutable) == {"a": [], "b": [], "c": []}


def test_max_active_skips_a_busy_instance_until_it_has_room(tmp_path: Path, qbts: list[Qbt]) -> None:
    preloaded = preload(qbts[0], 3)
    limits: list[dict[str, Any]] = [{"max_active": 3}, {}, {}]
    with daemon_for(tmp_path, qbts, limits, defaults={"paused": False}).start() as daemon:
        wait_for(lambda: status_of(daemon, "a") == "BUSY", 20, "a BUSY")
        first = drop_many(daemon, 4, "busy")
        all_sent(daemon, first)
        assert exactly_once(daemon, qbts, first) == {"a": 0, "b": 4, "c": 0}
        api = qbts[0].api()
        api.login()
        api.request("POST", "torrents/delete", data={"hashes": "|".join(preloaded), "deleteFiles": "false"})
        wait_for(lambda: status_of(daemon, "a") == "OK", 20, "a OK again")
        second = drop_many(daemon, 5, "room")
        all_sent(daemon, second)
        # a has room for 3 (magnetd counts its own adds), the rest goes on down the list
        assert exactly_once(daemon, qbts, second) == {"a": 3, "b": 2, "c": 0}
        wait_for(lambda: status_of(daemon, "a") == "BUSY", 20, "a BUSY with magnetd's own adds")


def test_least_active_evens_out_the_instances(tmp_path: Path, qbts: list[Qbt]) -> None:
    for server, count in zip(qbts, (8, 4, 0), strict=True):
        preload(server, count)
    daemon = daemon_for(
        tmp_path, qbts, [{}, {}, {}], dispatch={"strategy": "least_active"}, defaults={"paused": False}
    )
    with daemon.start():
        wanted = drop_many(daemon, 12, "least")
        all_sent(daemon, wanted)
        counts = exactly_once(daemon, qbts, wanted)
        assert counts == {"a": 0, "b": 4, "c": 8}, counts


def reported_free_space(qbt: Qbt) -> int:
    """``free_space_on_disk`` as qBittorrent reports it now (-1: not measured yet)."""
    api = qbt.api()
    api.login()
    time.sleep(0.5)  # when polled: one login per half second
    return int(
        api.request("GET", "sync/maindata", params={"rid": "0"}).json()["server_state"]["free_space_on_disk"]
    )


def test_min_free_space_above_the_real_free_space(tmp_path: Path, qbts: list[Qbt]) -> None:
    """LOW_SPACE when qBittorrent reports its free space; -1 (unknown, as 4.5.2 here) never blocks."""
    deadline = time.monotonic() + 60  # 4.5.2 reports -1 until its own disk check has run
    wait_for(lambda: reported_free_space(qbts[0]) >= 0 or time.monotonic() > deadline, 70, "a value")
    limits: list[dict[str, Any]] = [{"min_free_space": "1024T"}, {"min_free_space": 1}, {}]
    with daemon_for(tmp_path, qbts, limits).start() as daemon:
        if reported_free_space(qbts[0]) >= 0:
            wait_for(lambda: status_of(daemon, "a") == "LOW_SPACE", 70, "a LOW_SPACE")
            assert status_of(daemon, "b") == "OK"
        wanted = drop_many(daemon, 3, "space")
        all_sent(daemon, wanted)
        placed = exactly_once(daemon, qbts, wanted)
        if status_of(daemon, "a") == "LOW_SPACE":
            assert placed == {"a": 0, "b": 3, "c": 0}
        else:
            assert reported_free_space(qbts[0]) < 0, "a value was reported but not used"
            assert placed == {"a": 3, "b": 0, "c": 0}


def test_the_rate_limit_holds_the_extra_magnets_for_the_next_minute(tmp_path: Path, qbts: list[Qbt]) -> None:
    only_books = {"categories": ["books"]}  # so that tv goes to a alone
    limits: list[dict[str, Any]] = [{"max_adds_per_minute": 5, "categories": ["tv"]}, only_books, only_books]
    with daemon_for(tmp_path, qbts, limits).start() as daemon:
        wanted = drop_many(daemon, 8, "rate", "tv")
        wait_for(lambda: len(daemon.files(daemon.sent)) == 5, 20, "the first five sent")
        wait_for(lambda: status_of(daemon, "a") == "RATE_LIMITED", 10, "a RATE_LIMITED")
        assert len(daemon.files(daemon.sent)) == 5
        assert len(set(daemon.files(daemon.inbox)) & set(wanted)) == 3, "the extra three wait in the inbox"
        all_sent(daemon, wanted, timeout=90)
        assert exactly_once(daemon, qbts, wanted) == {"a": 8, "b": 0, "c": 0}
