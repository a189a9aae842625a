"""benchmarks.compare: the run order, and how medians, spreads and goals become verdicts."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.compare import MIB_PER_10MB, Check, Pair, compare, schedule
from benchmarks.features import Options

LATENCY = Check("lat", "latency median", "ms", "ratio", 1.05, "within 5 %")
IDLE = Check("idle", "idle CPU", "%", "absolute", 1.0, "<= 1 %")
RSS = Check("rss", "peak RSS", "MiB", "growth", MIB_PER_10MB, "+ <= 10 MB")
PAIR = Pair("p", Options(notify=True), ("latency",), (LATENCY, IDLE, RSS))


def run(options: str, errors: list[str] | None = None, **figures: float) -> dict[str, Any]:
    return {"pair": "p", "options": options, "figures": figures, "errors": errors or []}


def by_key(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {line["key"]: line for line in compare(PAIR, runs)}


def test_each_repeat_runs_both_sides_and_the_first_side_alternates() -> None:
    assert schedule(3) == [False, True, True, False, False, True]


def test_medians_ratio_and_per_repeat_ratios() -> None:
    lines = by_key(
        [
            run("none", lat=10.0),
            run("notify", lat=10.2),
            run("notify", lat=10.6),
            run("none", lat=10.1),
            run("none", lat=9.9),
            run("notify", lat=10.3),
        ]
    )
    lat = lines["lat"]
    assert lat["median_without"] == 10.0 and lat["median_with"] == 10.3
    assert lat["ratio"] == pytest.approx(1.03)
    assert lat["paired_ratios"] == pytest.approx([1.02, 10.6 / 10.1, 10.3 / 9.9])
    assert lat["status"] == "PASS" and lat["note"] == ""
    assert lat["spread_with_pct"] == pytest.approx(0.4 / 10.3 * 100)


def test_a_spread_wider_than_the_goal_is_said_and_a_miss_is_a_miss() -> None:
    lat = by_key(
        [run("none", lat=10.0), run("notify", lat=12.0), run("notify", lat=11.0), run("none", lat=9.0)]
    )["lat"]
    assert lat["status"] == "MISS"
    assert lat["note"].startswith("noise: spread up to 11 %")


def test_absolute_and_growth_goals() -> None:
    lines = by_key(
        [
            run("none", idle=0.1, rss=60.0),
            run("notify", idle=0.9, rss=69.0),
            run("notify", idle=1.2, rss=71.0),
            run("none", idle=0.2, rss=60.0),
        ]
    )
    assert lines["idle"]["median_with"] == pytest.approx(1.05) and lines["idle"]["status"] == "MISS"
    assert lines["rss"]["growth"] == pytest.approx(10.0) and lines["rss"]["status"] == "MISS"
    assert by_key([run("none", rss=60.0), run("notify", rss=69.0)])["rss"]["status"] == "PASS"


def test_failed_runs_and_missing_figures_are_left_out() -> None:
    lines = by_key(
        [run("none", lat=10.0), run("notify", ["bulk: timeout"], lat=99.0), run("notify", lat=10.4)]
    )
    assert lines["lat"]["with"] == [10.4]
    assert set(lines) == {"lat"}
