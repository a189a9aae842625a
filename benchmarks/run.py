"""Run every benchmark once: ``python -m benchmarks.run [--quick] [--out benchmarks/results]``.

Starts its own qbittorrent-nox instances and magnetd daemons, measures bulk and drain at
each size (default 2,000, 10,000 and 30,000 files; bulk three times, giving the medians),
prints each figure with its ratio and target, the scale table with its goals and a
100,000-file estimate, and writes ``results.json``, ``results.csv`` (and ``results.png``,
``scale.png`` when matplotlib is installed) to ``--out``.
Exit status: 0 when every scenario finished (targets missed or not), 1 otherwise.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks import report, scale, scaleplot, scenarios
from benchmarks.features import Features, Options
from benchmarks.rig import Rig, enter_private_network, machine
from benchmarks.scenarios import Settings

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
CLOCK = (
    "visibility = this process's monotonic clock when the log/main poll returning the"
    " 'Added new torrent' entry completes (polled every {poll_ms:g} ms for single drops,"
    " {bulk_ms:g} ms for bulk); qBittorrent 4.5.2 stamps log entries in whole seconds, too"
    " coarse to use. sent/ arrivals are timed by inotify (IN_MOVED_TO) on the same clock."
)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="5 drops, N=200 and 400, 10 s idle (about a minute)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for results.json/csv/png")
    parser.add_argument("--workdir", type=Path, default=None, help="where the temporary folders go")
    parser.add_argument(
        "--only",
        choices=["latency", "bulk", "drain", "idle"],
        action="append",
        help="run only these scenarios (repeatable); figures of the others are missing",
    )
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=None,
        help="bulk drop sizes, comma-separated (default 2000,10000,30000; quick 200,400)",
    )
    parser.add_argument(
        "--drain",
        type=_sizes,
        default=None,
        help="drain sizes, comma-separated (default: the bulk sizes)",
    )
    parser.add_argument(
        "--takes",
        type=int,
        default=None,
        help="measure each bulk size this many times and report the medians (default 3; quick 2)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="sample magnetd with py-spy during bulk (largest N) and drain"
    )
    parser.add_argument(
        "--host-network", action="store_true", help="do not enter a private network namespace"
    )
    parser.add_argument(
        "--notify",
        action="store_true",
        help="every daemon notifies a webhook and an Apprise json:// URL (local receivers) of file_sent etc.",
    )
    parser.add_argument(
        "--http",
        action="store_true",
        help="every daemon serves the status endpoint (with a token); idle scrapes /metrics every 15 s",
    )
    return parser.parse_args(argv)


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


Step = Callable[[], scenarios.Figures]


def plan(rig: Rig, settings: Settings, samples: dict[str, list[float]]) -> list[tuple[str, str, Step]]:
    """The scenarios in run order, each as (name for --only, label, step); bulk runs once per N.

    Latency samples and every bulk take's figures go into ``samples``.
    """

    def latency() -> scenarios.Figures:
        figures, found = scenarios.latency(rig, settings)
        samples.update(found)
        return figures

    def bulk(n: int) -> scenarios.Figures:
        figures, takes = scenarios.bulk(rig, n, settings)
        samples.update(takes)
        return figures

    steps: list[tuple[str, str, Step]] = [("latency", "latency", latency)]
    steps += [("bulk", f"bulk{n}", partial(bulk, n)) for n in settings.bulk_sizes]
    steps += [("drain", f"drain{n}", partial(scenarios.drain, rig, n)) for n in settings.drain_sizes]
    steps.append(("idle", "idle", partial(scenarios.idle, rig, settings)))
    return steps


@dataclass
class Outcome:
    """What the scenarios produced, including what went wrong."""

    raw: report.Raw = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def measure(rig: Rig, settings: Settings, only: list[str] | None) -> Outcome:
    """Run each scenario; a failed one is reported and the others still run."""
    done = Outcome()
    for name, label, step in plan(rig, settings, done.samples):
        if only and name not in only:
            continue
        print(f"== {label} ...", flush=True)
        started = time.monotonic()
        try:
            figures = step()
        except Exception as exc:  # any failure: report it, run the other scenarios
            done.errors.append(f"{name}: {exc}")
            print(f"   FAILED: {exc}", flush=True)
            traceback.print_exc()
            continue
        finally:
            done.seconds[name] = done.seconds.get(name, 0.0) + time.monotonic() - started
            told = rig.notified(label)  # the step's daemons have stopped
        done.raw.update(figures | told)
        print("   " + ", ".join(f"{k}={report.fmt(v)}" for k, v in figures.items()), flush=True)
    return done


def result(meta: dict[str, Any], settings: Settings, options: Options, done: Outcome) -> dict[str, Any]:
    """Everything the JSON file holds."""
    sizes, drains = settings.bulk_sizes, settings.drain_sizes
    report.derive(done.raw, sizes, drains)
    scale.derive(done.raw, sizes, drains)
    return {
        "meta": meta,
        # drain_size: the largest drain, for readers of results written before drain_sizes
        "settings": asdict(settings) | {"drain_size": max(drains)},
        "options": options.describe(),
        "figures": done.raw,
        "table": report.table(done.raw, sizes, drains, options.label),
        "scale": scale.summary(done.raw, sizes, drains, done.samples),
        "samples": done.samples,
        "errors": done.errors,
        "scenario_seconds": done.seconds,
    }


def header(meta: dict[str, Any]) -> str:
    return "\n".join(f"{key:>16}: {value}" for key, value in meta.items())


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through every clean-up


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    settings = Settings.quick() if args.quick else Settings()
    if args.sizes:
        settings = replace(settings, bulk_sizes=args.sizes, drain_sizes=args.sizes)
    if args.drain:
        settings = replace(settings, drain_sizes=args.drain)
    if args.takes is not None:
        settings = replace(settings, bulk_takes=max(1, args.takes))
    options = Options(notify=args.notify, http=args.http)
    signal.signal(signal.SIGTERM, _terminate)
    network = "host network (--host-network)" if args.host_network else enter_private_network()
    root = Path(tempfile.mkdtemp(prefix="magnetd-bench-", dir=args.workdir))
    features = Features(options)  # its receivers listen inside the private network
    try:
        meta = machine(root, network)
        meta["mode"] = "quick" if args.quick else "full"
        meta["options"] = options.label
        meta["clock"] = CLOCK.format(poll_ms=settings.latency_poll * 1000, bulk_ms=settings.bulk_poll * 1000)
        print(header(meta), flush=True)
        meta["profiled"] = args.profile  # py-spy slows the daemon: such figures are not comparable
        done = measure(Rig(root, args.out if args.profile else None, features), settings, args.only)
    finally:
        features.close()
        shutil.rmtree(root, ignore_errors=True)
    data = result(meta, settings, options, done)
    print()
    print(report.render(data["table"]))
    print()
    print(scale.render(data["scale"]))
    print()
    print(scaleplot.text_chart(data["scale"]))
    for path in [*report.write(args.out, data), *scaleplot.write(args.out, data["scale"])]:
        print(f"wrote {path}")
    for error in done.errors:
        print(f"ERROR {error}", file=sys.stderr)
    return 1 if done.errors else 0


if __name__ == "__main__":
    sys.exit(main())
