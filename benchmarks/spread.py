"""Spreading a bulk drop over three instances: ``python -m benchmarks.spread [--n 10000] [--repeats 2]``.

The same N files renamed into the inbox at once, sent either to one fresh
qbittorrent-nox (``dispatch.strategy: priority``) or over three fresh ones
(``round_robin``), alternating; it reports each time until every file is in
``sent/``, the medians and their ratio, and writes ``spread.json``. On a 2-core
machine three qBittorrents share the same two cores, so the ratio says what
parallel couriers buy when the instances compete for one machine's CPU; on
separate machines they would not.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from benchmarks.rig import Rig, enter_private_network, machine, magnets, quiet_disk, rename_in, stage
from benchmarks.scenarios import bulk_timeout, watch_folder
from tests.daemon import instance

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def bulk(rig: Rig, n: int, instances: int, run: int) -> float:
    """Seconds until all ``n`` files are in ``sent/``, over ``instances`` fresh instances."""
    prefix = f"s{instances}-{run}-"
    items = magnets(prefix.rstrip("-"), n)
    with ExitStack() as stack:
        servers = [rig.qbt(stack, f"spread{instances}-{run}-{i}") for i in range(instances)]
        entries = [instance(f"q{i}", s.url, s.password) for i, s in enumerate(servers)]
        strategy = "round_robin" if instances > 1 else "priority"
        daemon = rig.daemon_for(stack, entries, dispatch={"strategy": strategy})
        staging = rig.folder(f"stage-{prefix}")
        stage(staging, items)
        sent = watch_folder(stack, daemon.sent)
        quiet_disk()
        start = time.monotonic()
        rename_in(staging, daemon.inbox, items)
        done = sent.seen.wait_count(n, prefix.rstrip("-"), bulk_timeout(n), f"all {n} files in sent/")
    return done - start


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.spread", description=__doc__)
    parser.add_argument("--n", type=int, default=10_000, help="files in the drop (default 10000)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each side, alternating (default 2)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for spread.json")
    args = parser.parse_args()
    network = enter_private_network()
    root = Path(tempfile.mkdtemp(prefix="magnetd-spread-"))
    rig = Rig(root)
    times: dict[int, list[float]] = {1: [], 3: []}
    for run in range(args.repeats):
        for count in (1, 3) if run % 2 == 0 else (3, 1):
            seconds = bulk(rig, args.n, count, run)
            times[count].append(seconds)
            print(f"run {run + 1}: {count} instance(s): {seconds:.2f} s", flush=True)
    one, three = statistics.median(times[1]), statistics.median(times[3])
    print(
        f"bulk {args.n}: one instance {one:.2f} s, three round_robin {three:.2f} s, ratio {three / one:.2f}"
    )
    result = {"machine": machine(root, network), "n": args.n, "seconds": times, "ratio": three / one}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "spread.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
