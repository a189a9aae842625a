"""The strategy, the limits and the load probe, with a fake client behind the real prober."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import pytest

from magnetd.balance.load import Facts, Loads, active_filters, count_active
from magnetd.balance.router import Balance
from magnetd.balance.settings import Limits, Strategy, parse_size
from magnetd.balance.strategy import Chooser, limit_status
from magnetd.config import Config, Folders, Instance, Secret
from magnetd.delivery.qbittorrent import AddAnswer
from magnetd.health.prober import Prober
from magnetd.health.state import Health
from magnetd.model import AddOptions, InstanceStatus


def inst(name: str, **limits: Any) -> Instance:
    return Instance(name, f"http://{name}:8080/", "admin", Secret("pw"), limits=Limits(**limits))


def config(instances: Sequence[Instance], strategy: Strategy) -> Config:
    folders = Folders(Path("i"), Path("s"), Path("f"), Path("t"))
    return Config(Path("c.yaml"), folders, tuple(instances), strategy=strategy)


def test_sizes_are_powers_of_1024() -> None:
    assert parse_size("20G") == 20 * 1024**3
    assert parse_size("1.5k") == 1536
    assert parse_size(42) == 42
    with pytest.raises(ValueError):
        parse_size("20GB")


def test_active_downloads_are_counted_by_state() -> None:
    torrents = [
        {"hash": "1", "state": "stalledDL", "progress": 0.1},
        {"hash": "2", "state": "pausedDL", "progress": 0.1},
        {"hash": "3", "state": "queuedDL", "progress": 0.0},
        {"hash": "4", "state": "metaDL", "progress": 0.0},
        {"hash": "4", "state": "metaDL", "progress": 0.0},  # listed by two filters
        {"hash": "5", "state": "checkingResumeData", "progress": 0.5},
        {"hash": "6", "state": "checkingResumeData", "progress": 1.0},
        {"hash": "7", "state": "error", "progress": 0.2},
    ]
    assert count_active(torrents) == 3


@pytest.mark.parametrize(
    ("webapi", "filters"),
    [
        ("2.8.19", ("active", "stalled_downloading", "checking")),  # 4.5.2
        ("2.9.3", ("active", "stalled_downloading", "checking")),  # 4.6.5
        ("2.11.2", ("downloading", "checking")),  # 5.0
        ("2.16.2", ("downloading", "checking")),  # 5.3.0
        ("", ("downloading", "checking")),
        ("garbage", ("downloading", "checking")),
    ],
)
def test_active_downloads_are_asked_without_paused_ones_where_a_filter_allows(
    webapi: str, filters: tuple[str, ...]
) -> None:
    assert active_filters(webapi) == filters


def test_limits_give_their_statuses() -> None:
    assert limit_status(Limits(max_active=2), Facts(active=2)) is not None
    assert limit_status(Limits(max_active=2), Facts(active=1)) is None
    busy = limit_status(Limits(max_active=2), Facts(active=2))
    assert busy is not None and busy.status == InstanceStatus.BUSY
    low = limit_status(Limits(min_free_space=100), Facts(free=99))
    assert low is not None and low.status == InstanceStatus.LOW_SPACE
    assert limit_status(Limits(min_free_space=100), Facts(free=None)) is None  # unknown never blocks
    rate = limit_status(Limits(max_adds_per_minute=3), Facts(recent=3))
    assert rate is not None and rate.status == InstanceStatus.RATE_LIMITED
    assert limit_status(Limits(max_active=2), Facts(active=0), n=5) is None  # a big file still goes somewhere


def test_round_robin_turns_and_skips_what_is_not_eligible() -> None:
    a, b, c = inst("a"), inst("b", categories=["tv"]), inst("c")
    chooser = Chooser(Strategy.ROUND_ROBIN, ["a", "b", "c"])
    picks = [chooser.choose([a, b, c], "tv", 1, lambda n: Facts()) for _ in range(4)]
    assert [p.name for p in picks if p] == ["a", "b", "c", "a"]
    picks = [chooser.choose([a, b, c], "books", 1, lambda n: Facts()) for _ in range(3)]
    assert [p.name for p in picks if p] == ["c", "a", "c"]
    assert chooser.choose([b], None, 1, lambda n: Facts()) is None  # b takes only tv


def test_least_active_counts_magnetds_own_adds() -> None:
    instances = [inst("a"), inst("b"), inst("c")]
    balance = Balance(config(instances, Strategy.LEAST_ACTIVE))
    for name, count in zip("abc", (8, 4, 0), strict=True):
        balance.loads.set_active(name, count, balance.loads.now())
    chosen = [balance.choose(instances, None, 1) for _ in range(12)]
    assert sorted(i.name for i in chosen if i) == ["b"] * 4 + ["c"] * 8


def test_rate_window_slides() -> None:
    clock = [0.0]
    loads = Loads(["a"], clock=lambda: clock[0])
    loads.note_adds("a", 5)
    assert loads.facts("a").recent == 5
    clock[0] = 60.0
    assert loads.facts("a").recent == 0


def test_adds_close_together_leave_the_window_with_the_last_of_them() -> None:
    clock = [0.0]
    loads = Loads(["a"], clock=lambda: clock[0])
    for step in range(5):  # 0.00 .. 0.08 s: one entry, at 0.08
        clock[0] = step * 0.02
        loads.note_adds("a", 1)
    clock[0] = 0.5
    loads.note_adds("a", 10)  # a new entry
    clock[0] = 60.05
    assert loads.facts("a").recent == 15  # the first five were kept until 60.08: never let out early
    clock[0] = 60.08
    assert loads.facts("a").recent == 10
    clock[0] = 60.5
    assert loads.facts("a").recent == 0
    loads.note_adds("a", 3)
    assert loads.facts("a").recent == 3


def test_a_count_of_active_downloads_keeps_the_adds_noted_after_it() -> None:
    clock = [0.0]
    loads = Loads(["a"], clock=lambda: clock[0])
    loads.note_adds("a", 4)
    clock[0] = 1.0
    loads.note_adds("a", 2)
    loads.set_active("a", 7, counted_at=0.5)  # counted the 4, not the 2
    assert loads.facts("a").active == 9
    clock[0] = 2.0
    loads.set_active("a", 20, counted_at=2.0)
    assert loads.facts("a").active == 20


def test_choosing_for_a_large_drop_does_not_rescan_what_was_added() -> None:
    """Each choice asks every candidate's facts: a sum over the window made a drop quadratic."""
    clock = [0.0]
    instances = [inst("a", max_adds_per_minute=10**9), inst("b"), inst("c")]
    loads = Loads([i.name for i in instances], clock=lambda: clock[0])
    balance = Balance(config(instances, Strategy.ROUND_ROBIN), loads)
    for _ in range(30_000):
        clock[0] += 0.001  # 30 s in all
        balance.choose(instances, None, 1)
    for record in loads._records.values():  # merged: at most one entry per 0.1 s, not one per file
        assert len(record.adds or ()) <= 301
    assert loads.facts("a").recent == 10_000


def test_a_steady_stream_under_the_rate_limit_is_never_held() -> None:
    """Merged entries span at most 0.1 s: a stream of adds never keeps one entry alive for good."""
    clock = [0.0]
    a = inst("a", max_adds_per_minute=1200)
    loads = Loads(["a"], clock=lambda: clock[0])
    chooser = Chooser(Strategy.PRIORITY, ["a"])
    refused = 0
    for step in range(4_500):  # 15 a second for 300 s: 900 a minute
        clock[0] = step / 15
        if chooser.choose([a], None, 1, loads.facts) is None:
            refused += 1
        else:
            loads.note_adds("a", 1)
    assert refused == 0
    assert 895 <= loads.facts("a").recent <= 902


def test_a_count_taken_during_a_stream_keeps_only_the_adds_after_it() -> None:
    clock = [0.0]
    loads = Loads(["a"], clock=lambda: clock[0])
    for step in range(1_980):  # 11 a second for 180 s
        clock[0] = step / 11
        loads.note_adds("a", 1)
        if step == 1_969:  # a count that began just after add 1,964 and ends now
            loads.set_active("a", 5, counted_at=1_964 / 11 + 0.01)
    # adds 1,965-1,979 after its start, and at most 0.1 s (two adds) more
    assert 5 + 15 <= loads.facts("a").active <= 5 + 15 + 2


def test_the_window_is_emptied_for_an_instance_whose_load_nothing_reads() -> None:
    clock = [0.0]
    instances = [inst("a"), inst("b")]
    loads = Loads(["a", "b"], clock=lambda: clock[0])
    balance = Balance(config(instances, Strategy.ROUND_ROBIN), loads)
    for step in range(10_000):  # a file a second; neither instance has a counted limit
        clock[0] = float(step)
        balance.choose(instances, None, 1)
    for record in loads._records.values():
        assert len(record.adds or ()) <= 31  # the last minute's, not all 5,000
        assert record.recent <= 31


class LoadClient:
    """A client that reports a load: the prober's real path, with no qBittorrent."""

    def __init__(self, free: int, torrents: list[dict[str, Any]]) -> None:
        self.free = free
        self.torrents = torrents
        self.calls: list[str] = []

    def version(self) -> str:
        return "2.8.19"

    def app_version(self) -> str:
        return "v4.5.2"

    def connection_status(self) -> str:
        return "connected"

    def add_magnets(self, uris: Sequence[str], options: AddOptions) -> AddAnswer:
        return AddAnswer(accepted=True)

    def add_torrent(self, filename: str, data: bytes, options: AddOptions) -> AddAnswer:
        return AddAnswer(accepted=True)

    def present(self, ids: Collection[str], per_call: int = 1000) -> set[str]:
        return set()

    def filtered(self, state_filter: str) -> list[dict[str, Any]]:
        self.calls.append(f"filter={state_filter}")
        return self.torrents if state_filter == "active" else []

    def free_space(self) -> int:
        self.calls.append("maindata")
        return self.free


def test_the_prober_reads_load_only_where_needed_and_free_space_once_a_minute() -> None:
    a = inst("a", min_free_space=1000, max_active=1)
    b = inst("b")
    cfg = config([a, b], Strategy.PRIORITY)
    clients = {
        "a": LoadClient(10, [{"hash": "x", "state": "downloading", "progress": 0.0}]),
        "b": LoadClient(0, []),
    }
    health = Health(cfg.instances, ())
    balance = Balance(cfg)
    prober = Prober(cfg.instances, clients, health, None, 1, balance=balance)
    prober.round()
    prober.round()
    counts = ["filter=active", "filter=stalled_downloading", "filter=checking"]
    assert clients["a"].calls == [*counts, "maindata", *counts]  # maindata once
    assert clients["b"].calls == []  # no limit, priority: no load probe at all
    view = {v.name: v.status for v in health.views()}
    assert view == {"a": InstanceStatus.BUSY, "b": InstanceStatus.OK}
    assert [i.name for i in health.usable()] == ["a", "b"]  # probed OK: the limit is per file


@pytest.mark.parametrize(
    ("limits", "counted"),
    [
        ({}, False),
        ({"categories": frozenset({"tv"})}, False),
        ({"max_active": 5}, True),
        ({"min_free_space": 0}, True),
        ({"max_adds_per_minute": 60}, True),
    ],
)
def test_the_load_is_read_only_for_an_instance_with_a_counted_limit(
    limits: dict[str, Any], counted: bool
) -> None:
    asked: list[str] = []

    def facts(name: str) -> Facts:
        asked.append(name)
        return Facts()

    a = Instance("a", "http://a:8080/", "admin", Secret("pw"), limits=Limits(**limits))
    assert Chooser(Strategy.ROUND_ROBIN, ["a"]).choose([a], "tv", 1, facts) is a
    assert a.limits.counted is counted
    assert asked == (["a"] if counted else [])
