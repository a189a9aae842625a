"""Turn raw figures into labelled rows with ratios and targets; print them; write JSON, CSV, PNG."""

from __future__ import annotations

import csv
import importlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Raw = dict[str, float]


@dataclass(frozen=True)
class Row:
    """One figure: its value, and its ratio to a reference figure or a fixed limit."""

    key: str
    label: str
    unit: str
    ref: str | float | None = None  # another row's key, a fixed number, or None (a reference itself)
    ref_label: str = ""
    optional: bool = False  # only with --notify or --http: left out of the table when missing


@dataclass(frozen=True)
class Target:
    """A goal for one figure: ``value <= factor * reference + offset``."""

    key: str
    text: str
    ref: str | float
    factor: float = 1.0
    offset: float = 0.0
    strict: bool = False  # ``value < limit`` instead of ``<=``


def rows(sizes: Sequence[int], drains: Sequence[int]) -> list[Row]:
    """Every figure a run produces, in print order."""
    out = [
        Row("lat_magnetd_median_ms", "latency median, magnetd (to log)", "ms", "lat_watch_median_ms"),
        Row("lat_magnetd_p95_ms", "latency p95, magnetd (to log)", "ms", "lat_watch_p95_ms"),
        Row("lat_settled_median_ms", "latency median, magnetd settled (sent/)", "ms", "lat_watch_median_ms"),
        Row("lat_settled_p95_ms", "latency p95, magnetd settled (sent/)", "ms", "lat_watch_p95_ms"),
        Row(
            "lat_close_median_ms",
            "latency median, magnetd, drops 0.05-0.5 s apart",
            "ms",
            "lat_watch_median_ms",
        ),
        Row("lat_close_p95_ms", "latency p95, magnetd, drops 0.05-0.5 s apart", "ms", "lat_watch_p95_ms"),
        Row("lat_watch_median_ms", "latency median, watched folder (to log)", "ms"),
        Row("lat_watch_p95_ms", "latency p95, watched folder (to log)", "ms"),
    ]
    for n in sizes:
        out += [
            Row(f"bulk{n}_magnetd_s", f"bulk {n}: magnetd, all in sent/", "s", f"bulk{n}_floor_s"),
            Row(
                f"bulk{n}_magnetd_per_file_ms",
                f"bulk {n}: magnetd per file",
                "ms",
                f"bulk{n}_watch_per_file_ms",
            ),
            Row(f"bulk{n}_magnetd_log_s", f"bulk {n}: magnetd, all in log", "s", f"bulk{n}_watch_s"),
            Row(f"bulk{n}_floor_s", f"bulk {n}: verification floor (1 torrents/info)", "s"),
            Row(
                f"bulk{n}_api_s",
                f"bulk {n}: bare WebAPI, add + info per 1000, no files",
                "s",
                f"bulk{n}_floor_s",
            ),
            Row(f"bulk{n}_watch_s", f"bulk {n}: watched folder, all in log", "s"),
            Row(f"bulk{n}_watch_per_file_ms", f"bulk {n}: watched folder per file", "ms"),
            Row(
                f"bulk{n}_rename_s", f"bulk {n}: renaming the files in (producer)", "s", f"bulk{n}_magnetd_s"
            ),
            Row(f"bulk{n}_cpu_s", f"bulk {n}: magnetd CPU, all threads", "s", f"bulk{n}_magnetd_s"),
            Row(f"bulk{n}_qbt_cpu_s", f"bulk {n}: qBittorrent CPU, same run", "s", f"bulk{n}_magnetd_s"),
        ]
    if len(sizes) > 1:
        small, large = min(sizes), max(sizes)
        out.append(
            Row("bulk_per_file_growth", f"magnetd per-file cost, {large} vs {small}", "x", 1.0, "flat")
        )
    big = max(sizes)
    for d in drains:
        ref = f"bulk{d}_magnetd_s" if d in sizes else None
        per_file_ref = f"bulk{d}_magnetd_per_file_ms" if d in sizes else None
        out += [
            Row(f"drain{d}_s", f"drain {d}: instance answers -> all in sent/", "s", ref),
            Row(f"drain{d}_per_file_ms", f"drain {d}: per file", "ms", per_file_ref),
        ]
    out += [
        Row("idle_cpu_percent", "idle CPU, % of one core", "%", 1.0, "target"),
        Row("idle_scrapes", "idle: /metrics scrapes (every 15 s, token)", "n", optional=True),
        Row("idle_scrape_median_ms", "idle: /metrics scrape, median", "ms", optional=True),
        Row("rss_idle_mb", "peak RSS of the idle daemon", "MiB", 80.0, "target", optional=True),
        Row(f"rss_bulk{big}_mb", f"peak RSS after bulk {big}", "MiB", 80.0, "target"),
    ]
    out += [Row(f"rss_drain{d}_mb", f"peak RSS after drain {d}", "MiB", 80.0, "target") for d in drains]
    out.append(Row("rss_peak_mb", "peak RSS (largest of bulk and drains)", "MiB", 80.0, "target"))
    return out + notify_rows(sizes, drains)


def notify_rows(sizes: Sequence[int], drains: Sequence[int]) -> list[Row]:
    """With ``--notify``: what the two receivers got from each scenario's daemons."""
    files: list[tuple[str, float | None]] = [("latency", None)]
    files += [(f"bulk{n}", float(n)) for n in sizes] + [(f"drain{d}", float(d)) for d in drains]
    files.append(("idle", None))
    out = []
    for label, count in files:
        out += [
            Row(
                f"notify_{label}_sent_files",
                f"notify {label}: files in file_sent digests",
                "n",
                count,
                "files sent" if count else "",
                optional=True,
            ),
            Row(f"notify_{label}_webhook_posts", f"notify {label}: webhook POSTs", "n", optional=True),
            Row(
                f"notify_{label}_apprise_posts", f"notify {label}: Apprise json:// POSTs", "n", optional=True
            ),
        ]
    return out


def targets(sizes: Sequence[int], drains: Sequence[int]) -> list[Target]:
    big = max(sizes)
    drain_targets = [
        Target(f"drain{d}_s", f"drain {d} <= bulk {d} + 3 s", f"bulk{d}_magnetd_s", 1.0, 3.0) for d in drains
    ]
    return [
        Target(
            "lat_magnetd_median_ms",
            "latency median <= 1/20 of the watched folder's",
            "lat_watch_median_ms",
            0.05,
        ),
        Target(
            f"bulk{big}_magnetd_s", f"bulk {big} total <= 2x verification floor", f"bulk{big}_floor_s", 2.0
        ),
        *drain_targets,
        Target("idle_cpu_percent", "idle <= 1 % of one core", 1.0),
        Target("rss_peak_mb", "peak RSS <= 80 MiB", 80.0),
    ]


def derive(raw: Raw, sizes: Sequence[int], drains: Sequence[int]) -> None:
    """Add the figures computed from others (per-file growth, the larger RSS)."""
    if len(sizes) > 1:
        small, large = f"bulk{min(sizes)}_magnetd_per_file_ms", f"bulk{max(sizes)}_magnetd_per_file_ms"
        if small in raw and large in raw:
            raw["bulk_per_file_growth"] = raw[large] / raw[small]
    keys = [f"rss_bulk{max(sizes)}_mb"] + [f"rss_drain{d}_mb" for d in drains]
    rss = [raw[k] for k in keys if k in raw]
    if rss:
        raw["rss_peak_mb"] = max(rss)


def _ref_value(raw: Raw, ref: str | float | None) -> float | None:
    if ref is None or isinstance(ref, float | int):
        return None if ref is None else float(ref)
    return raw.get(ref)


def ratio(raw: Raw, row: Row) -> float | None:
    value, base = raw.get(row.key), _ref_value(raw, row.ref)
    if value is None or base is None or base == 0:
        return None
    return value / base


def verdict(raw: Raw, target: Target) -> tuple[float | None, str]:
    """The limit and PASS, MISS, or N/A (a figure is missing)."""
    base = _ref_value(raw, target.ref)
    value = raw.get(target.key)
    if base is None or value is None:
        return None, "N/A"
    limit = target.factor * base + target.offset
    met = value < limit if target.strict else value <= limit
    return limit, "PASS" if met else "MISS"


def fmt(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def table(
    raw: Raw, sizes: Sequence[int], drains: Sequence[int], options: str = "none"
) -> list[dict[str, Any]]:
    """One dict per row: key, label, value, unit, ratio, ratio_to, its target if it has one, and
    ``options``: which optional parts of magnetd were on (``none``, ``notify``, ``http``, ``notify+http``).
    """
    by_key = {t.key: t for t in targets(sizes, drains)}
    every = rows(sizes, drains)
    lines = []
    for row in every:
        if row.optional and row.key not in raw:
            continue
        label = row.ref_label or next((r.label for r in every if r.key == row.ref), "")
        line: dict[str, Any] = {
            "key": row.key,
            "label": row.label,
            "value": raw.get(row.key),
            "unit": row.unit,
            "ratio": ratio(raw, row),
            "ratio_to": label if row.ref is not None else "(reference)",
            "target": "",
            "limit": None,
            "status": "",
            "options": options,
        }
        if row.key in by_key:
            limit, status = verdict(raw, by_key[row.key])
            line.update(target=by_key[row.key].text, limit=limit, status=status)
        lines.append(line)
    return lines


def render(lines: list[dict[str, Any]]) -> str:
    """The table for people, under a line naming the optional parts that were on."""
    options = lines[0]["options"] if lines else "none"
    out = [f"magnetd options: {options}", f"{'figure':<50} {'value':>10} {'unit':<4} {'ratio':>8}  to"]
    for line in lines:
        out.append(
            f"{line['label']:<50} {fmt(line['value']):>10} {line['unit']:<4} {fmt(line['ratio']):>8}  "
            f"{line['ratio_to']}"
        )
        if line["status"]:
            out.append(
                f"{'':<50} {line['status']:>10}      target: {line['target']} (limit {fmt(line['limit'])})"
            )
    return "\n".join(out)


def write(out: Path, result: dict[str, Any]) -> list[Path]:
    """``results.json``, ``results.csv`` and (with matplotlib) ``results.png`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "results.json", out / "results.csv"]
    written[0].write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    with written[1].open("w", newline="", encoding="utf-8") as handle:
        fields = [
            "key",
            "label",
            "value",
            "unit",
            "ratio",
            "ratio_to",
            "target",
            "limit",
            "status",
            "options",
        ]
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(result["table"])
    chart = out / "results.png"
    if draw(chart, result["figures"], result["settings"]["bulk_sizes"], result["settings"]["drain_sizes"]):
        written.append(chart)
    return written


def pyplot() -> Any:
    """matplotlib's pyplot drawing to files (Agg), or None when matplotlib is not installed."""
    try:
        matplotlib: Any = importlib.import_module("matplotlib")
        matplotlib.use("Agg")
        return importlib.import_module("matplotlib.pyplot")
    except ImportError:
        return None


def draw(path: Path, raw: Raw, sizes: Sequence[int], drains: Sequence[int]) -> bool:
    """A three-panel PNG chart; False when matplotlib is not installed."""
    if (plt := pyplot()) is None:
        return False
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.5))
    _bars(
        axes[0],
        "latency median (ms, log)",
        raw,
        {
            "magnetd": "lat_magnetd_median_ms",
            "magnetd settled": "lat_settled_median_ms",
            "magnetd, close drops": "lat_close_median_ms",
            "watched folder": "lat_watch_median_ms",
        },
        log=True,
    )
    bulk_keys: dict[str, str] = {}
    for n in sizes:
        bulk_keys |= {
            f"magnetd {n}": f"bulk{n}_magnetd_s",
            f"floor {n}": f"bulk{n}_floor_s",
            f"watch {n}": f"bulk{n}_watch_s",
        }
    _bars(axes[1], "bulk: seconds until all N (log)", raw, bulk_keys, log=True)
    drain_keys: dict[str, str] = {}
    for d in drains:
        drain_keys |= {f"bulk {d}": f"bulk{d}_magnetd_s", f"drain {d}": f"drain{d}_s"}
    _bars(axes[2], "drain vs bulk (s)", raw, drain_keys)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _bars(ax: Any, title: str, raw: Raw, keys: dict[str, str], log: bool = False) -> None:
    present = {label: raw[key] for label, key in keys.items() if key in raw}
    ax.bar(list(present), list(present.values()), color="#4477aa")
    ax.set_title(title)
    if log:
        ax.set_yscale("log")
    ax.tick_params(axis="x", labelrotation=30)
    for index, value in enumerate(present.values()):
        ax.annotate(fmt(value), (index, value), ha="center", va="bottom", fontsize=8)
