"""The benchmark runs end to end in quick mode and writes every figure (no timing is checked).

It runs with ``--notify --http``, which costs no extra time: every daemon notifies two
local receivers and serves the status endpoint, and idle scrapes /metrics.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from tests.qbt import need_qbt

pytestmark = pytest.mark.real

PROJECT = Path(__file__).resolve().parents[2]
QUICK_FIGURES = [
    "lat_magnetd_median_ms",
    "lat_magnetd_p95_ms",
    "lat_settled_median_ms",
    "lat_settled_p95_ms",
    "lat_close_median_ms",
    "lat_close_p95_ms",
    "lat_watch_median_ms",
    "lat_watch_p95_ms",
    "bulk200_magnetd_s",
    "bulk200_magnetd_per_file_ms",
    "bulk200_magnetd_log_s",
    "bulk200_floor_s",
    "bulk200_api_s",
    "bulk200_watch_s",
    "bulk200_watch_per_file_ms",
    "bulk200_cpu_s",
    "bulk200_qbt_cpu_s",
    "drain200_s",
    "drain200_per_file_ms",
    "idle_cpu_percent",
    "rss_bulk200_mb",
    "rss_drain200_mb",
    "rss_peak_mb",
    "rss_idle_mb",
    "idle_scrapes",
    "idle_scrape_median_ms",
]
SIZES = (200, 400)  # Settings.quick(): bulk and drain at both
SCALE_FIGURES = [
    key
    for n in SIZES
    for key in (
        f"bulk{n}_magnetd_s",
        f"bulk{n}_magnetd_log_s",
        f"bulk{n}_api_s",
        f"bulk{n}_watch_s",
        f"bulk{n}_cpu_s",
        f"bulk{n}_cpu_per_file_us",
        f"bulk{n}_added_vs_watch",
        f"bulk{n}_verified_vs_alone",
        f"drain{n}_s",
        f"drain{n}_minus_bulk_s",
        f"rss_bulk{n}_mb",
        f"rss_drain{n}_mb",
    )
] + [
    "estimate100000_bulk_magnetd_s",
    "estimate100000_bulk_magnetd_log_s",
    "estimate100000_bulk_api_s",
    "estimate100000_bulk_watch_s",
    "estimate100000_drain_s",
    "estimate100000_bulk_cpu_per_file_us",
]
DROPS = 5  # Settings.quick(): each latency round drops one more (the warm-up), and there are two rounds
TAKES = 2  # Settings.quick(): each bulk size is measured twice


def test_quick_benchmark_writes_every_figure(tmp_path: Path) -> None:
    need_qbt()
    out = tmp_path / "results"
    command = [
        sys.executable,
        "-m",
        "benchmarks.run",
        "--quick",
        "--notify",
        "--http",
        "--out",
        str(out),
        "--workdir",
        str(tmp_path),
    ]
    done = subprocess.run(command, cwd=PROJECT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    result = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert result["errors"] == []
    assert result["meta"]["mode"] == "quick"
    assert result["meta"]["options"] == result["options"]["label"] == "notify+http"
    # the interpreter the daemons ran on (this one), and how its libpython is linked
    shared = "/libpython" in Path("/proc/self/maps").read_text()
    build = result["meta"]["python_build"]
    assert build.startswith(os.path.realpath(sys.executable) + ", libpython "), build
    assert ("libpython shared (" in build) is shared, build
    figures = result["figures"]
    for key in QUICK_FIGURES + SCALE_FIGURES:
        value = figures.get(key)
        assert isinstance(value, int | float) and not isinstance(value, bool), f"{key}: {value!r}"
        assert math.isfinite(value), f"{key}: {value!r}"
    assert (out / "results.csv").read_text(encoding="utf-8").startswith("key,label,value")
    targets = [row for row in result["table"] if row["status"]]
    assert {row["status"] for row in targets} <= {"PASS", "MISS"}
    assert len(targets) == 4 + len(SIZES)  # latency, bulk 400 vs floor, idle, RSS; a drain per size
    assert {row["options"] for row in result["table"]} == {"notify+http"}

    assert figures["idle_scrapes"] >= 1, "the scraper got /metrics with the token"
    labels = ["latency"] + [f"{kind}{n}" for kind in ("bulk", "drain") for n in SIZES]
    told = {label: figures[f"notify_{label}_sent_files"] for label in labels}
    expected = {"latency": 2 * (DROPS + 1)}
    expected |= {f"bulk{n}": TAKES * n for n in SIZES} | {f"drain{n}": n for n in SIZES}
    assert told == expected, "every sent file was told"
    for label in labels:
        assert figures[f"notify_{label}_webhook_posts"] >= 1
        assert figures[f"notify_{label}_apprise_posts"] == figures[f"notify_{label}_webhook_posts"]

    takes = result["samples"]
    for n in SIZES:  # each bulk figure is the median of its takes, peak RSS the highest
        for key in (f"bulk{n}_magnetd_s", f"bulk{n}_cpu_s", f"bulk{n}_api_s", f"bulk{n}_watch_s"):
            each = takes[f"takes_{key}"]
            assert len(each) == TAKES and figures[key] == statistics.median(each), key
        assert figures[f"rss_bulk{n}_mb"] == max(takes[f"takes_rss_bulk{n}_mb"])

    scale = result["scale"]
    rows = scale["rows"]
    assert [(row["n"], row["estimate"]) for row in rows] == [(200, False), (400, False), (100_000, True)]
    for row in rows[:2]:
        assert row["verified_s"] == figures[f"bulk{row['n']}_magnetd_s"]
        assert row["cpu_per_file_us"] == pytest.approx(figures[f"bulk{row['n']}_cpu_s"] / row["n"] * 1e6)
        assert len(row["cpu_per_file_takes_us"]) == TAKES
    assert rows[2]["verified_s"] == figures["estimate100000_bulk_magnetd_s"]
    assert {goal["status"] for goal in scale["targets"]} <= {"PASS", "MISS"}, scale["targets"]
    assert "scale: added = all N" in done.stdout and "100,000*" in done.stdout
    assert "CPU per file in each take" in done.stdout
