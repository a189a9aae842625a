"""How cost grows with N: a plain-text chart for the printed report, ``scale.png`` with matplotlib.

Both read the ``scale`` summary of results.json (``benchmarks.scale.summary``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.report import fmt, pyplot
from benchmarks.scale import CPU_GOAL_US

TIMES = {
    "added": "added_s",
    "verified": "verified_s",
    "qBittorrent alone": "alone_s",
    "watched folder": "watch_s",
    "drain": "drain_s",
}
WIDTH = 40  # characters of the longest bar


def bar(value: float, top: float, width: int = WIDTH) -> str:
    """``value`` as a bar of ``#``, ``width`` long at ``top``; at least one ``#`` above zero."""
    if top <= 0 or value <= 0:
        return ""
    return "#" * max(1, round(value / top * width))


def measured_rows(scale: dict[str, Any]) -> list[dict[str, Any]]:
    return [row for row in scale["rows"] if not row["estimate"]]


def _panel(title: str, unit: str, series: dict[str, list[tuple[int, float]]]) -> list[str]:
    values = [v for points in series.values() for _, v in points]
    if not values:
        return []
    top = max(values)
    out = [f"{title} ({unit}; the longest bar is {fmt(top)} {unit})"]
    for label, points in series.items():
        for index, (n, value) in enumerate(points):
            name = label if index == 0 else ""
            out.append(f"  {name:<18} {n:>7,} |{bar(value, top):<{WIDTH}}| {fmt(value)}")
    return out


def text_chart(scale: dict[str, Any]) -> str:
    """Time until all N and CPU per file against N, as bars (measured sizes only)."""
    rows = measured_rows(scale)
    times = {
        label: [(row["n"], row[name]) for row in rows if row[name] is not None]
        for label, name in TIMES.items()
    }
    cpu = {"CPU per file": [(row["n"], row["cpu_per_file_us"]) for row in rows if row["cpu_per_file_us"]]}
    lines = _panel("seconds until all N", "s", times) + _panel("magnetd CPU per file", "us", cpu)
    return "\n".join(lines) if lines else "(no bulk or drain figures to chart)"


def write(out: Path, scale: dict[str, Any]) -> list[Path]:
    """``scale.png`` in ``out`` when matplotlib can be imported and there is something to draw."""
    path = out / "scale.png"
    return [path] if draw(path, scale) else []


def draw(path: Path, scale: dict[str, Any]) -> bool:
    """Two panels: time against N, CPU per file against N; dashed: the least-squares lines."""
    rows = measured_rows(scale)
    if not rows:
        return False
    if (plt := pyplot()) is None:
        return False
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    fits = scale["estimate"]["fits"]
    far = scale["estimate"]["n"]
    for label, name in TIMES.items():
        points = [(row["n"], row[name]) for row in rows if row[name] is not None]
        if not points:
            continue
        (line,) = left.plot(*zip(*points, strict=True), marker="o", label=label)
        if name in fits:
            _extend(left, fits[name], min(n for n, _ in points), far, line.get_color())
    left.set(
        title=f"seconds until all N (dashed: least-squares line to {far:,})", xlabel="N files", ylabel="s"
    )
    left.legend(fontsize=8)
    cpu = [(row["n"], row["cpu_per_file_us"]) for row in scale["rows"] if row["cpu_per_file_us"] is not None]
    measured = [(n, v) for n, v in cpu if n != far]
    if measured:
        right.plot(*zip(*measured, strict=True), marker="o", color="#4477aa", label="magnetd CPU per file")
    for n, value in cpu:
        if n == far:
            right.plot([n], [value], marker="o", fillstyle="none", color="#4477aa", label="estimate")
    right.axhline(CPU_GOAL_US, color="#aa3333", linestyle=":", label=f"goal: < {CPU_GOAL_US:g} us")
    right.set(title="magnetd CPU per file (us)", xlabel="N files", ylabel="us")
    right.set_ylim(0, max([CPU_GOAL_US] + [v for _, v in cpu]) * 1.15)
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _extend(ax: Any, line: dict[str, Any], start: int, end: int, color: str) -> None:
    slope = line["slope_per_1000"] / 1000
    xs = [start, end]
    ax.plot(xs, [line["intercept"] + slope * x for x in xs], linestyle="--", color=color, alpha=0.6)
    ax.plot([end], [line["intercept"] + slope * end], marker="o", fillstyle="none", color=color)
