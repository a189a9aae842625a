"""benchmarks.scale and scaleplot: the per-size derivations, the goals, the 100,000-file estimate."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from benchmarks import report, scale, scaleplot
from benchmarks.scenarios import combined

SIZES = (2000, 10_000, 30_000)


def bulk(n: int, **values: float) -> dict[str, float]:
    """Raw figures of one size; the keyword names are scale's column names."""
    keys = {fig.name: fig.at(n) for fig in scale.BASE}
    return {keys[name]: value for name, value in values.items()}


def three_sizes() -> dict[str, float]:
    raw: dict[str, float] = {}
    for n, k in zip(SIZES, (1.0, 5.0, 15.0), strict=True):
        raw |= bulk(
            n,
            added_s=0.45 * k,
            verified_s=0.5 * k,
            alone_s=0.35 * k,
            watch_s=0.3 * k + 2,
            drain_s=0.5 * k + 1,
            rss_bulk_mb=40 + k,
            rss_drain_mb=42 + k,
            cpu_s=80e-6 * n,
            qbt_cpu_s=240e-6 * n,
        )
    return raw | {"lat_magnetd_median_ms": 9.0, "lat_watch_median_ms": 400.0, "idle_cpu_percent": 0.05}


def goals(raw: dict[str, float], sizes: tuple[int, ...] = SIZES) -> dict[str, str]:
    scale.derive(raw, sizes, sizes)
    return {
        goal["key"] + " " + goal["text"]: goal["status"]
        for goal in scale.summary(raw, sizes, sizes)["targets"]
    }


def status(raw: dict[str, float], key: str, text_part: str = "") -> str:
    found = [s for name, s in goals(raw).items() if name.startswith(key + " ") and text_part in name]
    assert len(found) == 1, found
    return found[0]


def test_each_size_gets_cpu_per_file_ratios_and_drain_minus_bulk() -> None:
    raw = bulk(2000, added_s=3.0, verified_s=4.0, alone_s=2.0, watch_s=2.5, drain_s=5.5, cpu_s=0.18)
    raw |= bulk(2000, qbt_cpu_s=0.6)
    raw |= bulk(10_000, verified_s=9.0)
    scale.derive(raw, (2000, 10_000), (2000,))
    assert raw["bulk2000_cpu_per_file_us"] == pytest.approx(90.0)
    assert raw["bulk2000_cpu_vs_qbt"] == pytest.approx(0.3)
    assert raw["bulk2000_added_vs_watch"] == pytest.approx(1.2)
    assert raw["bulk2000_verified_vs_alone"] == pytest.approx(2.0)
    assert raw["drain2000_minus_bulk_s"] == pytest.approx(1.5)
    # 10,000 has no drain, CPU, watched folder or bare-API figure: nothing is made up for it
    assert not {k for k in raw if k.startswith(("bulk10000_", "drain10000_")) and k != "bulk10000_magnetd_s"}


def test_the_least_squares_line_is_the_textbook_one() -> None:
    line = scale.fit([(2000, 1.0), (10_000, 4.0), (30_000, 16.0)])
    assert line is not None
    # mean N 14,000, mean value 7; Sxy = 228,000 and Sxx = 416e6
    assert line.slope == pytest.approx(228_000 / 416e6)
    assert line.at(14_000) == pytest.approx(7.0)
    assert line.sizes == (2000, 10_000, 30_000)
    assert scale.fit([(2000, 1.0)]) is None
    assert scale.fit([(2000, 1.0), (2000, 2.0)]) is None, "one size twice says nothing about growth"


def test_the_100k_estimate_extrapolates_each_figure_and_derives_ratios_from_the_estimates() -> None:
    raw = bulk(2000, verified_s=1.0, alone_s=1.0, cpu_s=0.2, watch_s=2.0)
    raw |= bulk(10_000, verified_s=4.0, alone_s=3.4, cpu_s=0.6, watch_s=2.5)
    raw |= bulk(30_000, verified_s=16.0, alone_s=9.4, cpu_s=1.6, watch_s=4.0)
    scale.derive(raw, SIZES, ())
    verified = 7.0 + 86_000 * 228_000 / 416e6  # the line above, at 100,000
    alone = 1.0 + 98_000 * 0.0003  # collinear: 0.3 s per 1,000 files
    assert raw["estimate100000_bulk_magnetd_s"] == pytest.approx(verified)
    assert raw["estimate100000_bulk_api_s"] == pytest.approx(alone)
    assert raw["estimate100000_bulk_verified_vs_alone"] == pytest.approx(verified / alone)
    assert raw["estimate100000_bulk_cpu_s"] == pytest.approx(0.2 + 98_000 * 0.00005)
    assert raw["estimate100000_bulk_cpu_per_file_us"] == pytest.approx(
        (0.2 + 98_000 * 0.00005) / 100_000 * 1e6
    )
    assert "estimate100000_drain_s" not in raw, "no drain measured, no drain estimated"
    assert not any(key.startswith("bulk100000") for key in raw), "an estimate never looks measured"


def test_summary_rows_one_per_size_then_the_estimate() -> None:
    raw = three_sizes()
    summary = scale.summary(raw, SIZES, SIZES)
    rows = summary["rows"]
    assert [(row["n"], row["estimate"]) for row in rows] == [
        (2000, False),
        (10_000, False),
        (30_000, False),
        (100_000, True),
    ]
    assert rows[1]["verified_s"] == pytest.approx(2.5) and rows[1]["drain_minus_bulk_s"] == pytest.approx(1.0)
    assert rows[2]["cpu_per_file_us"] == pytest.approx(80.0)
    assert rows[2]["cpu_vs_qbt"] == pytest.approx(1 / 3) and rows[3]["cpu_vs_qbt"] == pytest.approx(1 / 3)
    assert rows[3]["verified_s"] == pytest.approx(25.0)
    assert summary["estimate"]["fits"]["verified_s"]["slope_per_1000"] == pytest.approx(0.25)


def test_one_size_gives_no_estimate_and_a_drain_only_size_has_empty_bulk_columns() -> None:
    raw = bulk(200, verified_s=1.0) | bulk(400, drain_s=2.0)
    summary = scale.summary(raw, (200,), (400,))
    assert [row["n"] for row in summary["rows"]] == [200, 400]
    assert summary["rows"][1]["verified_s"] is None and summary["rows"][1]["drain_s"] == 2.0
    assert summary["estimate"]["fits"] == {}
    assert "no estimate for 100,000" in scale.render(summary)


def test_added_goal_is_at_most_the_watched_folder() -> None:
    raw = three_sizes() | bulk(10_000, added_s=3.5, watch_s=3.5)
    assert status(raw, "bulk10000_magnetd_log_s") == "PASS"
    raw = three_sizes() | bulk(10_000, added_s=3.6, watch_s=3.5)
    assert status(raw, "bulk10000_magnetd_log_s") == "MISS"


def test_verified_goal_is_one_and_a_half_times_qbittorrent_alone() -> None:
    raw = three_sizes() | bulk(30_000, verified_s=15.0, alone_s=10.0)
    assert status(raw, "bulk30000_magnetd_s") == "PASS"
    raw = three_sizes() | bulk(30_000, verified_s=15.1, alone_s=10.0)
    assert status(raw, "bulk30000_magnetd_s") == "MISS"


def test_cpu_goal_is_strictly_under_100_us_per_file() -> None:
    assert status(three_sizes() | bulk(2000, cpu_s=0.1998), "bulk2000_cpu_per_file_us") == "PASS"
    assert status(three_sizes() | bulk(2000, cpu_s=0.2), "bulk2000_cpu_per_file_us") == "MISS"  # exactly 100


def test_drain_goal_is_bulk_plus_three_seconds_at_every_size() -> None:
    raw = (
        three_sizes() | bulk(2000, verified_s=1.0, drain_s=4.0) | bulk(30_000, verified_s=10.0, drain_s=13.5)
    )
    assert status(raw, "drain2000_s") == "PASS"
    assert status(raw, "drain30000_s") == "MISS"


def test_rss_goal_is_90_mb_not_mib_at_the_largest_size_only() -> None:
    mib = 90e6 / 2**20  # 85.83 MiB
    raw = three_sizes() | bulk(30_000, rss_bulk_mb=mib - 0.01, rss_drain_mb=mib + 0.01)
    raw |= bulk(2000, rss_bulk_mb=200.0)
    assert status(raw, "rss_bulk30000_mb") == "PASS"
    assert status(raw, "rss_drain30000_mb") == "MISS"
    assert not any(name.startswith("rss_bulk2000_mb") for name in goals(raw))


def test_latency_and_idle_goals_are_repeated_and_a_missing_figure_is_not_applicable() -> None:
    raw = three_sizes()
    del raw["idle_cpu_percent"]
    found = goals(raw)
    assert status(raw, "lat_magnetd_median_ms") == "PASS"
    assert [s for name, s in found.items() if name.startswith("idle_cpu_percent ")] == ["N/A"]
    expected = (
        3 * 3 + 3 + 2 + 2
    )  # added, verified, CPU per size; drain per size; RSS bulk/drain; latency, idle
    assert len(found) == expected


def test_main_targets_cover_every_drain_size_and_rss_peak_takes_every_drain() -> None:
    keys = [t.key for t in report.targets((200, 400), (200, 400))]
    assert keys.count("drain200_s") == 1 and keys.count("drain400_s") == 1
    raw = {"rss_bulk400_mb": 50.0, "rss_drain200_mb": 70.0, "rss_drain400_mb": 60.0}
    report.derive(raw, (200, 400), (200, 400))
    assert raw["rss_peak_mb"] == 70.0


def test_strict_target_misses_at_the_limit() -> None:
    target = report.Target("x", "x < 10", 10.0, strict=True)
    assert report.verdict({"x": 10.0}, target) == (10.0, "MISS")
    assert report.verdict({"x": 10.0}, report.Target("x", "x <= 10", 10.0)) == (10.0, "PASS")


def test_render_marks_the_estimate_and_lists_every_goal() -> None:
    raw = three_sizes()
    summary = scale.summary(raw, SIZES, SIZES)
    text = scale.render(summary)
    assert " 100,000*" in text and "an estimate, not measured" in text
    assert "CPU/qbt" in text and text.splitlines()[3].split()[-1] == "0.333"  # the 2,000 row
    assert text.count("PASS") + text.count("MISS") + text.count("N/A") == len(summary["targets"])


def test_takes_combine_as_the_median_and_peak_rss_as_the_highest() -> None:
    takes = [
        {"bulk2000_cpu_s": 0.20, "bulk2000_magnetd_s": 0.9, "rss_bulk2000_mb": 50.0},
        {"bulk2000_cpu_s": 0.14, "bulk2000_magnetd_s": 0.5, "rss_bulk2000_mb": 61.0},
        {"bulk2000_cpu_s": 0.16, "bulk2000_magnetd_s": 0.6, "rss_bulk2000_mb": 55.0},
    ]
    assert combined(takes) == {"bulk2000_cpu_s": 0.16, "bulk2000_magnetd_s": 0.6, "rss_bulk2000_mb": 61.0}
    two = combined(takes[:2])  # an even count: the mean of the middle two
    assert two["bulk2000_cpu_s"] == pytest.approx(0.17) and two["rss_bulk2000_mb"] == 61.0


def test_each_takes_cpu_per_file_is_in_its_row_and_printed_under_the_table() -> None:
    raw = three_sizes()
    takes = {"takes_bulk2000_cpu_s": [0.15, 0.19, 0.16], "takes_bulk10000_cpu_s": [0.8]}
    summary = scale.summary(raw, SIZES, SIZES, takes)
    rows = {row["n"]: row for row in summary["rows"]}
    assert rows[2000]["cpu_per_file_takes_us"] == pytest.approx([75.0, 95.0, 80.0])
    assert rows[10_000]["cpu_per_file_takes_us"] == pytest.approx([80.0])
    assert rows[30_000]["cpu_per_file_takes_us"] == [] and "cpu_per_file_takes_us" not in rows[100_000]
    text = scale.render(summary)
    assert "the median of the takes" in text
    assert "      2,000: 75.00 / 95.00 / 80.00" in text.splitlines()
    assert "10,000: 80.00" not in text  # one take: nothing to spread
    assert "median of the takes" not in scale.render(scale.summary(raw, SIZES, SIZES))


def test_text_chart_bars_are_to_scale() -> None:
    rows: list[dict[str, Any]] = [
        {"n": n, "estimate": False} | {fig.name: None for fig in scale.FIGURES} for n in (200, 400)
    ]
    rows[0] |= {"verified_s": 2.0, "cpu_per_file_us": 50.0}
    rows[1] |= {"verified_s": 4.0, "cpu_per_file_us": 100.0}
    chart = scaleplot.text_chart({"rows": rows, "estimate": {"n": 100_000, "fits": {}}})
    bars = [line.split("|")[1].strip() for line in chart.splitlines() if "|" in line]
    assert bars == ["#" * 20, "#" * 40, "#" * 20, "#" * 40]
    assert "added" not in chart, "a figure measured at no size is left out"


def test_scale_png_is_written_with_matplotlib(tmp_path: Path) -> None:
    raw = three_sizes()
    scale.derive(raw, SIZES, SIZES)
    written = scaleplot.write(tmp_path, scale.summary(raw, SIZES, SIZES))
    assert written == [tmp_path / "scale.png"]  # matplotlib is a test dependency
    assert (tmp_path / "scale.png").read_bytes().startswith(b"\x89PNG")


def test_without_matplotlib_no_chart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def no_matplotlib(name: str, package: str | None = None) -> Any:
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", no_matplotlib)
    raw = three_sizes()
    assert scaleplot.write(tmp_path, scale.summary(raw, SIZES, SIZES)) == []
    assert list(tmp_path.iterdir()) == []
