"""What notifications and the status endpoint cost: ``python -m benchmarks.compare [--quick]``.

Runs magnetd against itself, in one invocation and one network namespace:

- ``notify``: latency and bulk 10,000 with no notify targets, then with ``--notify``;
- ``http``: idle, bulk 10,000 and drain 10,000 (for the peak RSS) without, then with ``--http``.

Each pair runs ``--repeats`` times (at least 2), alternating A B, B A, A B, ... so that a
slow spell of the shared machine does not fall on one side only. It prints, per figure,
the median of each side with its range and spread, the ratio of the medians and the range
of the per-repeat ratios, and the verdict against the goal; a spread larger than what the
goal allows is said. Writes ``compare.json`` (every run's figures) to ``--out``.
Exit status: 0 when every run finished (goals missed or not), 1 otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.features import Features, Options
from benchmarks.rig import Rig, enter_private_network, machine
from benchmarks.run import DEFAULT_OUT, header, measure
from benchmarks.scenarios import Settings

MIB_PER_10MB = 10e6 / 2**20  # the RSS goal is 10 MB; the benchmark reports MiB


@dataclass(frozen=True)
class Check:
    """One figure compared between the two sides, and its goal if it has one.

    ``kind``: ``ratio`` (B / A of the medians <= ``limit``), ``absolute`` (B's median <= ``limit``),
    ``growth`` (B's median - A's median <= ``limit``) or ``info`` (no goal).
    """

    key: str
    label: str
    unit: str
    kind: str = "info"
    limit: float = 0.0
    goal: str = ""


@dataclass(frozen=True)
class Pair:
    name: str
    options: Options
    only: tuple[str, ...]
    checks: tuple[Check, ...]


def pairs(settings: Settings) -> dict[str, Pair]:
    n, d = max(settings.bulk_sizes), max(settings.drain_sizes)
    notify = (
        Check("lat_magnetd_median_ms", "latency median (to log)", "ms", "ratio", 1.05, "within 5 %"),
        Check("lat_magnetd_p95_ms", "latency p95 (to log)", "ms"),
        Check("lat_settled_median_ms", "latency median, settled in sent/", "ms"),
        Check("lat_close_median_ms", "latency median, drops 0.05-0.5 s apart", "ms"),
        Check(f"bulk{n}_magnetd_s", f"bulk {n}, all in sent/", "s", "ratio", 1.05, "within 5 %"),
        Check(f"bulk{n}_cpu_s", f"bulk {n}, magnetd CPU (all threads)", "s"),
        Check(f"bulk{n}_qbt_cpu_s", f"bulk {n}, qBittorrent CPU", "s"),
        Check(f"rss_bulk{n}_mb", f"peak RSS after bulk {n}", "MiB"),
    )
    http = (
        Check("idle_cpu_percent", "idle CPU, % of one core", "%", "absolute", 1.0, "<= 1 % of a core"),
        Check("rss_idle_mb", "peak RSS of the idle daemon", "MiB"),
        Check("rss_peak_mb", "peak RSS (after bulk and drain)", "MiB", "growth", MIB_PER_10MB, "+ <= 10 MB"),
        Check(f"bulk{n}_magnetd_s", f"bulk {n}, all in sent/", "s"),
        Check(f"drain{d}_s", f"drain {d}", "s"),
    )
    return {
        "notify": Pair("notify", Options(notify=True), ("latency", "bulk"), notify),
        "http": Pair("http", Options(http=True), ("idle", "bulk", "drain"), http),
    }


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the --quick sizes (N=200, 10 s idle)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each side (at least 2; default 3)")
    parser.add_argument("--pair", choices=["notify", "http"], action="append", help="only these (repeatable)")
    parser.add_argument(
        "--only",
        choices=["latency", "bulk", "drain", "idle"],
        action="append",
        help="only these of each pair's scenarios (repeatable): more repeats of one noisy figure",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for compare.json")
    parser.add_argument("--workdir", type=Path, default=None, help="where the temporary folders go")
    parser.add_argument("--host-network", action="store_true", help="do not enter a network namespace")
    args = parser.parse_args(argv)
    if args.repeats < 2:
        parser.error("--repeats must be at least 2")
    return args


def one_run(
    root: Path, settings: Settings, pair: Pair, options: Options, only: list[str] | None
) -> dict[str, Any]:
    """One side of one repeat, in its own folder (removed afterwards)."""
    folder = Path(tempfile.mkdtemp(prefix=f"{pair.name}-{options.label}-", dir=root))
    features = Features(options)
    load = os.getloadavg()[0]
    started = time.monotonic()
    try:
        scenarios = [name for name in pair.only if not only or name in only]
        done = measure(Rig(folder, None, features), settings, scenarios)
    finally:
        features.close()
        shutil.rmtree(folder, ignore_errors=True)
    report.derive(done.raw, settings.bulk_sizes, settings.drain_sizes)
    return {
        "pair": pair.name,
        "options": options.label,
        "load_before": load,
        "seconds": time.monotonic() - started,
        "figures": done.raw,
        "errors": done.errors,
    }


def schedule(repeats: int) -> list[bool]:
    """Which side runs when (False: without, True: with): A B, B A, A B, ..."""
    order: list[bool] = []
    for index in range(repeats):
        order += [False, True] if index % 2 == 0 else [True, False]
    return order


def spread(values: list[float]) -> float | None:
    """(max - min) / median, in %."""
    middle = statistics.median(values)
    return None if middle == 0 else (max(values) - min(values)) / middle * 100


def summarize(check: Check, without: list[float], with_: list[float], paired: list[float]) -> dict[str, Any]:
    """Medians, ranges, spreads, the ratio and the verdict of one figure."""
    a, b = statistics.median(without), statistics.median(with_)
    ratio = b / a if a else None
    line: dict[str, Any] = {
        "key": check.key,
        "label": check.label,
        "unit": check.unit,
        "without": without,
        "with": with_,
        "median_without": a,
        "median_with": b,
        "spread_without_pct": spread(without),
        "spread_with_pct": spread(with_),
        "ratio": ratio,
        "growth": b - a,
        "paired_ratios": paired,
        "goal": check.goal,
        "status": "",
        "note": "",
    }
    if check.kind == "ratio" and ratio is not None:
        line["status"] = "PASS" if ratio <= check.limit else "MISS"
        noise = max(s for s in (line["spread_without_pct"], line["spread_with_pct"], 0.0) if s is not None)
        allowed = (check.limit - 1) * 100
        if noise > allowed:
            line["note"] = f"noise: spread up to {noise:.0f} %, more than the {allowed:.0f} % measured"
    elif check.kind == "absolute":
        line["status"] = "PASS" if b <= check.limit else "MISS"
    elif check.kind == "growth":
        line["status"] = "PASS" if b - a <= check.limit else "MISS"
    return line


def compare(pair: Pair, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One summary per check of ``pair`` that both sides measured."""
    mine = [run for run in runs if run["pair"] == pair.name and not run["errors"]]
    lines = []
    for check in pair.checks:
        measured = [r for r in mine if check.key in r["figures"]]
        without = [r["figures"][check.key] for r in measured if r["options"] == "none"]
        with_ = [r["figures"][check.key] for r in measured if r["options"] != "none"]
        if without and with_:
            paired = [b / a for a, b in zip(without, with_, strict=False) if a]
            lines.append(summarize(check, without, with_, paired))
    return lines


def render(pair: Pair, lines: list[dict[str, Any]]) -> str:
    fmt = report.fmt
    out = [
        f"== {pair.name}: none vs {pair.options.label} (medians; [min-max]; spread = range / median)",
        f"{'figure':<46} {'none':>22} {pair.options.label:>22} {'ratio':>6} {'pairs':>11}  goal",
    ]
    for line in lines:
        a = f"{fmt(line['median_without'])} [{fmt(min(line['without']))}-{fmt(max(line['without']))}]"
        b = f"{fmt(line['median_with'])} [{fmt(min(line['with']))}-{fmt(max(line['with']))}]"
        paired = line["paired_ratios"]
        pairs_text = f"{min(paired):.2f}-{max(paired):.2f}" if paired else "-"
        goal = f"{line['goal']}: {line['status']}" if line["status"] else ""
        out.append(
            f"{line['label'] + ' (' + line['unit'] + ')':<46} {a:>22} {b:>22} "
            f"{fmt(line['ratio']):>6} {pairs_text:>11}  {goal}"
        )
        spreads = [line["spread_without_pct"], line["spread_with_pct"]]
        text = " / ".join("-" if s is None else f"{s:.0f} %" for s in spreads)
        out.append(f"{'':<46} spread {text}; growth {fmt(line['growth'])} {line['unit']}  {line['note']}")
    return "\n".join(out)


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    sizes = (200,) if args.quick else (10_000,)
    settings = Settings.quick() if args.quick else Settings()
    # one take per run: the runs themselves are repeated, alternating the two sides
    settings = dataclasses.replace(
        settings, bulk_sizes=sizes, drain_sizes=sizes, references=False, bulk_takes=1
    )
    chosen = [p for name, p in pairs(settings).items() if not args.pair or name in args.pair]
    chosen = [p for p in chosen if not args.only or set(p.only) & set(args.only)]
    signal.signal(signal.SIGTERM, _terminate)
    network = "host network (--host-network)" if args.host_network else enter_private_network()
    root = Path(tempfile.mkdtemp(prefix="magnetd-compare-", dir=args.workdir))
    runs: list[dict[str, Any]] = []
    try:
        meta = machine(root, network) | {"mode": "quick" if args.quick else "full", "repeats": args.repeats}
        print(header(meta), flush=True)
        for pair in chosen:
            for index, side in enumerate(schedule(args.repeats)):
                options = pair.options if side else Options()
                print(f"\n### {pair.name} run {index + 1}/{2 * args.repeats}: {options.label}", flush=True)
                runs.append(one_run(root, settings, pair, options, args.only))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    summaries = {pair.name: compare(pair, runs) for pair in chosen}
    print()
    for pair in chosen:
        print(render(pair, summaries[pair.name]) + "\n")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "compare.json"
    data = {"meta": meta, "settings": dataclasses.asdict(settings), "summaries": summaries, "runs": runs}
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    errors = [f"{r['pair']}/{r['options']}: {e}" for r in runs for e in r["errors"]]
    for error in errors:
        print(f"ERROR {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
