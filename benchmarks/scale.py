"""The scale view: bulk and drain at every size side by side, the goals, and an estimate.

One row per size N: the time until all N files are added (in qBittorrent's log) and
verified (in ``sent/``), the same N with qBittorrent alone (bare WebAPI) and through its
watched folder, the drain of N held files, peak RSS and magnetd's CPU per file. The
estimate for a larger drop (``ESTIMATE_N``) fits a least-squares line ``a + b * N``
through the measured sizes, one per base figure, and derives the ratios from those.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks import report
from benchmarks.report import Raw, Target, fmt, verdict

ESTIMATE_N = 100_000
MIB_PER_MB = 1e6 / 2**20
RSS_GOAL_MB = 90.0
CPU_GOAL_US = 100.0


@dataclass(frozen=True)
class Figure:
    """One column: its name in a scale row, and its raw key with ``{n}`` for the size."""

    name: str
    key: str
    label: str
    unit: str

    def at(self, n: int) -> str:
        return self.key.format(n=n)

    def estimate_key(self, n: int = ESTIMATE_N) -> str:
        """``estimate100000_bulk_magnetd_s`` for ``bulk{n}_magnetd_s``: never a measured key."""
        return f"estimate{n}_" + self.key.replace("{n}", "")


# Measured figures: each gets its own least-squares line.
BASE = (
    Figure("added_s", "bulk{n}_magnetd_log_s", "added", "s"),
    Figure("verified_s", "bulk{n}_magnetd_s", "verified", "s"),
    Figure("alone_s", "bulk{n}_api_s", "qBittorrent alone", "s"),
    Figure("watch_s", "bulk{n}_watch_s", "watched folder", "s"),
    Figure("drain_s", "drain{n}_s", "drain", "s"),
    Figure("rss_bulk_mb", "rss_bulk{n}_mb", "peak RSS bulk", "MiB"),
    Figure("rss_drain_mb", "rss_drain{n}_mb", "peak RSS drain", "MiB"),
    Figure("cpu_s", "bulk{n}_cpu_s", "magnetd CPU", "s"),
    Figure("qbt_cpu_s", "bulk{n}_qbt_cpu_s", "qBittorrent CPU", "s"),
)
# Computed from a row's base figures, measured or estimated alike (see ``derived``).
DERIVED = (
    Figure("added_vs_watch", "bulk{n}_added_vs_watch", "added/watch", "x"),
    Figure("verified_vs_alone", "bulk{n}_verified_vs_alone", "verified/alone", "x"),
    Figure("drain_minus_bulk_s", "drain{n}_minus_bulk_s", "drain - bulk", "s"),
    Figure("cpu_per_file_us", "bulk{n}_cpu_per_file_us", "CPU per file", "us"),
    # magnetd's CPU against qBittorrent's for the same drop in the same run: what sending a
    # file costs next to what adding and listing its torrent costs qBittorrent
    Figure("cpu_vs_qbt", "bulk{n}_cpu_vs_qbt", "CPU/qBittorrent's", "x"),
)
FIGURES = BASE + DERIVED


@dataclass(frozen=True)
class Fit:
    """A least-squares line ``intercept + slope * N`` through ``sizes``."""

    slope: float
    intercept: float
    sizes: tuple[int, ...]

    def at(self, n: float) -> float:
        return self.intercept + self.slope * n


def _quotient(top: float | None, bottom: float | None, scale: float = 1.0) -> float | None:
    if top is None or bottom is None or bottom == 0:
        return None
    return top / bottom * scale


def derived(n: int, base: Mapping[str, float]) -> dict[str, float]:
    """The ratio, difference and per-file columns of a row with base figures ``base``."""
    found = {
        "added_vs_watch": _quotient(base.get("added_s"), base.get("watch_s")),
        "verified_vs_alone": _quotient(base.get("verified_s"), base.get("alone_s")),
        "cpu_per_file_us": _quotient(base.get("cpu_s"), n, 1e6),
        "cpu_vs_qbt": _quotient(base.get("cpu_s"), base.get("qbt_cpu_s")),
        "drain_minus_bulk_s": None,
    }
    if "drain_s" in base and "verified_s" in base:
        found["drain_minus_bulk_s"] = base["drain_s"] - base["verified_s"]
    return {name: value for name, value in found.items() if value is not None}


def measured(raw: Raw, n: int) -> dict[str, float]:
    """Row ``n``'s base figures that ``raw`` holds."""
    return {fig.name: raw[fig.at(n)] for fig in BASE if fig.at(n) in raw}


def every_size(sizes: Sequence[int], drains: Sequence[int]) -> list[int]:
    return sorted(set(sizes) | set(drains))


def fit(points: Sequence[tuple[int, float]]) -> Fit | None:
    """The least-squares line through ``points`` (N, value); None with fewer than two sizes."""
    if len({n for n, _ in points}) < 2:
        return None
    line = statistics.linear_regression([float(n) for n, _ in points], [v for _, v in points])
    return Fit(line.slope, line.intercept, tuple(n for n, _ in points))


def fits(raw: Raw, sizes: Sequence[int]) -> dict[str, Fit]:
    """One line per base figure measured at two sizes or more."""
    out = {}
    for fig in BASE:
        line = fit([(n, raw[fig.at(n)]) for n in sizes if fig.at(n) in raw])
        if line is not None:
            out[fig.name] = line
    return out


def estimate(lines: Mapping[str, Fit], n: int = ESTIMATE_N) -> dict[str, float]:
    """Every figure at ``n``: base figures from their lines, the others derived from those."""
    base = {name: line.at(n) for name, line in lines.items()}
    return base | derived(n, base)


def derive(raw: Raw, sizes: Sequence[int], drains: Sequence[int]) -> None:
    """Add the derived figures per size and the ``estimate100000_*`` figures to ``raw``."""
    every = every_size(sizes, drains)
    for n in every:
        for name, value in derived(n, measured(raw, n)).items():
            raw[_by_name(name).at(n)] = value
    for name, value in estimate(fits(raw, every)).items():
        raw[_by_name(name).estimate_key()] = value


def _by_name(name: str) -> Figure:
    return next(fig for fig in FIGURES if fig.name == name)


def targets(sizes: Sequence[int], drains: Sequence[int]) -> list[Target]:
    """Every scale goal, at every size it applies to; RSS at the largest size measured."""
    rss_mib = RSS_GOAL_MB * MIB_PER_MB
    out = [
        Target(f"bulk{n}_magnetd_log_s", f"bulk {n}: added <= watched folder", f"bulk{n}_watch_s")
        for n in sizes
    ]
    out += [
        Target(f"bulk{n}_magnetd_s", f"bulk {n}: verified <= 1.5 x qBittorrent alone", f"bulk{n}_api_s", 1.5)
        for n in sizes
    ]
    out += [
        Target(
            f"bulk{n}_cpu_per_file_us", f"bulk {n}: magnetd CPU per file < 100 us", CPU_GOAL_US, strict=True
        )
        for n in sizes
    ]
    out += [
        Target(f"drain{d}_s", f"drain {d} <= bulk {d} + 3 s", f"bulk{d}_magnetd_s", 1.0, 3.0) for d in drains
    ]
    out.append(Target(f"rss_bulk{max(sizes)}_mb", f"peak RSS after bulk {max(sizes)} <= 90 MB", rss_mib))
    out.append(Target(f"rss_drain{max(drains)}_mb", f"peak RSS, drain {max(drains)} <= 90 MB", rss_mib))
    kept = ("lat_magnetd_median_ms", "idle_cpu_percent")  # goals of the main table, repeated here
    return out + [t for t in report.targets(sizes, drains) if t.key in kept]


def summary(
    raw: Raw, sizes: Sequence[int], drains: Sequence[int], takes: Mapping[str, Sequence[float]] | None = None
) -> dict[str, Any]:
    """The scale table for results.json: rows (measured, then the estimate), goals, the lines.

    ``takes``: every bulk take's figures (``takes_<key>``); a measured row then also has the
    CPU per file of each take (``cpu_per_file_takes_us``), its own figure being their median.
    """
    every = every_size(sizes, drains)
    rows: list[dict[str, Any]] = []
    for n in every:
        found = measured(raw, n)
        found |= derived(n, found)
        row = {"n": n, "estimate": False} | {fig.name: found.get(fig.name) for fig in FIGURES}
        cpu = (takes or {}).get(f"takes_bulk{n}_cpu_s", [])
        rows.append(row | {"cpu_per_file_takes_us": [seconds / n * 1e6 for seconds in cpu]})
    lines = fits(raw, every)
    if lines:
        guessed = estimate(lines)
        rows.append(
            {"n": ESTIMATE_N, "estimate": True} | {fig.name: guessed.get(fig.name) for fig in FIGURES}
        )
    goals = []
    for target in targets(sizes, drains):
        limit, status = verdict(raw, target)
        value = raw.get(target.key)
        goals.append(
            {"key": target.key, "text": target.text, "value": value, "limit": limit, "status": status}
        )
    method = "least-squares line a + b * N through the measured sizes, per base figure; ratios from those"
    return {
        "rows": rows,
        "targets": goals,
        "estimate": {
            "n": ESTIMATE_N,
            "method": method,
            "fits": {
                name: {
                    "slope_per_1000": line.slope * 1000,
                    "intercept": line.intercept,
                    "sizes": list(line.sizes),
                }
                for name, line in lines.items()
            },
        },
    }


COLUMNS = (
    ("added", "s", "added_s"),
    ("verified", "s", "verified_s"),
    ("alone", "s", "alone_s"),
    ("watched", "s", "watch_s"),
    ("add/watch", "x", "added_vs_watch"),
    ("ver/alone", "x", "verified_vs_alone"),
    ("drain", "s", "drain_s"),
    ("dr-bulk", "s", "drain_minus_bulk_s"),
)


def render(scale: dict[str, Any]) -> str:
    """The scale table, its goals and the estimate, for people."""
    out = [
        "scale: added = all N in qBittorrent's log, verified = all N in sent/, alone = bare WebAPI,"
        " watched = watched folder",
        f"{'N':>9} "
        + " ".join(f"{name:>10}" for name, _, _ in COLUMNS)
        + f" {'RSS b/d':>14} {'CPU/file':>9} {'CPU/qbt':>8}",
        f"{'':>9} "
        + " ".join(f"{'(' + unit + ')':>10}" for _, unit, _ in COLUMNS)
        + f" {'(MiB)':>14} {'(us)':>9} {'(x)':>8}",
    ]
    for row in scale["rows"]:
        size = f"{row['n']:,}" + ("*" if row["estimate"] else " ")
        cells = " ".join(f"{fmt(row[name]):>10}" for _, _, name in COLUMNS)
        rss = f"{fmt(row['rss_bulk_mb'])} / {fmt(row['rss_drain_mb'])}"
        cpu = f"{fmt(row['cpu_per_file_us']):>9} {fmt(row['cpu_vs_qbt']):>8}"
        out.append(f"{size:>9} {cells} {rss:>14} {cpu}")
    spread = [row for row in scale["rows"] if len(row.get("cpu_per_file_takes_us", [])) > 1]
    if spread:
        out.append("bulk figures: the median of the takes; peak RSS: the highest.")
        out.append("CPU per file in each take (us):")
        out += [
            f"    {row['n']:>7,}: " + " / ".join(fmt(value) for value in row["cpu_per_file_takes_us"])
            for row in spread
        ]
    estimate_n = scale["estimate"]["n"]
    if scale["estimate"]["fits"]:
        out.append(f"* {estimate_n:,}: an estimate, not measured ({scale['estimate']['method']})")
        for name, line in scale["estimate"]["fits"].items():
            sizes = ", ".join(f"{n:,}" for n in line["sizes"])
            fig = _by_name(name)
            growth = f"{fmt(line['slope_per_1000'])} {fig.unit} per 1,000 files"
            out.append(f"    {fig.label:<18} grows {growth} (N = {sizes})")
    else:
        out.append(f"no estimate for {estimate_n:,}: fewer than two sizes measured")
    out.append("goals:")
    for goal in scale["targets"]:
        out.append(
            f"  {goal['status']:>4}  {goal['text']:<48} {fmt(goal['value']):>9} (limit {fmt(goal['limit'])})"
        )
    return "\n".join(out)
