"""The benchmark runs end to end in quick mode and writes every figure (no timing is checked).

It runs with ``--notify --http``, which costs no extra time: every daemon notifies two
local receivers and serves the status endpoint, and idle scrapes /metrics.
"""

from __future__ import annotations

import json
import math
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
DROPS = 5  # Settings.quick(): each latency round drops one more (the warm-up), and there are two rounds


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
    figures = result["figures"]
    for key in QUICK_FIGURES:
        value = figures.get(key)
        assert isinstance(value, int | float) and not isinstance(value, bool), f"{key}: {value!r}"
        assert math.isfinite(value), f"{key}: {value!r}"
    assert (out / "results.csv").read_text(encoding="utf-8").startswith("key,label,value")
    targets = [row for row in result["table"] if row["status"]]
    assert {row["status"] for row in targets} <= {"PASS", "MISS"}
    assert len(targets) == 5
    assert {row["options"] for row in result["table"]} == {"notify+http"}

    assert figures["idle_scrapes"] >= 1, "the scraper got /metrics with the token"
    told = {label: figures[f"notify_{label}_sent_files"] for label in ("latency", "bulk200", "drain200")}
    assert told == {"latency": 2 * (DROPS + 1), "bulk200": 200, "drain200": 200}, "every sent file was told"
    for label in ("latency", "bulk200", "drain200"):
        assert figures[f"notify_{label}_webhook_posts"] >= 1
        assert figures[f"notify_{label}_apprise_posts"] == figures[f"notify_{label}_webhook_posts"]
