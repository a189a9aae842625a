"""CPU per call of magnetd's per-file hot spots, this version against an older one.

Cases (each a call the daemon makes once per file, or once per batch of 1,000):

- ``log_json``: one ``file_sent`` event, JSON lines to ``/dev/null`` (a secret registered)
- ``log_journal``: the same event to a journald-style datagram socket (a thread drains it)
- ``info_decode``: ``Client.present`` over 1,000 ids, answered (through ``responses``)
  by a 1,000-torrent ``torrents/info`` body built from a real 4.5.2 object (``--info 5.3``:
  a 5.3 one); figures are per call, i.e. per 1,000 torrents, and it makes a hundredth of
  ``--calls``
- ``parse_magnet``: ``items.parse_item`` of a one-line ``.magnet`` file (a magnet with a
  name and three trackers)
- ``layered``: ``options.layered`` for a file in a sub-folder with ``folders.options``
- ``inotify``: ``InotifyReader.handle`` of one ``IN_MOVED_TO`` event (in lists of 1,000)

Each case runs in a child process (``PYTHONPATH`` set to the version's tree), which
measures its own thread's CPU clock (``time.thread_time``, user + system) around
``--calls`` calls, ``--runs`` times after a warm-up, and prints the median µs per call.
``--against REV`` extracts ``magnetd/`` as it was at git revision ``REV`` and alternates
the versions. ``--callgrind`` counts the main thread's instructions instead (two child
runs under valgrind, with ``--calls`` and twice as many; the difference divided by
``--calls``), which other load on the machine does not change::

    .venv/bin/python -m benchmarks.cpu_micro log_json parse_magnet --against HEAD~3
    .venv/bin/python -m benchmarks.cpu_micro log_json --against HEAD~3 --callgrind --calls 2000
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
CURRENT = "current"
TOTALS = re.compile(r"^totals:\s+(\d+)", re.MULTILINE)
CASES = ("log_json", "log_journal", "info_decode", "parse_magnet", "layered", "inotify")
HEX = "0123456789abcdef0123456789abcdef01234567"
MAGNET = (
    f"magnet:?xt=urn:btih:{HEX}&dn=Some.Show.S01E02.1080p.WEB.h264-GROUP"
    "&tr=udp%3A%2F%2Ftracker.opentrackr.org%3A1337%2Fannounce"
    "&tr=udp%3A%2F%2Fopen.tracker.cl%3A1337%2Fannounce&tr=udp%3A%2F%2Ftracker.torrent.eu.org%3A451"
)

Call = Callable[[], object]


# -- the cases: each returns the call to time (set-up done) ---------------------------------------


def _log_call() -> Call:
    from magnetd import logs

    log = logs.get("magnetd.delivery.settler")
    counter = iter(range(1 << 62))

    def call() -> None:
        log.info(
            "file_sent",
            file=f"books/some file {next(counter)}.magnet",
            outcome="sent",
            instance="primary",
            infohash=HEX,
            failed_lines=None,
            category="books",
        )

    return call


def case_log_json() -> Call:
    from magnetd import logs

    logs.register_secrets(["a-webui-password"])
    logs.setup("json", stream=open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the process
    return _log_call()


def case_log_journal() -> Call:
    import socket
    import threading

    from magnetd import logs

    path = os.path.join(tempfile.mkdtemp(), "journal.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)

    def drain() -> None:
        while True:
            server.recv(1 << 16)

    threading.Thread(target=drain, daemon=True).start()
    os.environ["MAGNETD_JOURNAL_SOCKET"] = path
    logs.register_secrets(["a-webui-password"])
    logs.setup("journal", stream=open(os.devnull, "w"))  # noqa: SIM115
    return _log_call()


def info_body(version: str, count: int = 1000) -> tuple[list[str], bytes]:
    """``count`` ids and a ``torrents/info`` answer listing them, from a real object of ``version``."""
    import hashlib

    (template,) = json.loads((DATA / f"torrents_info_{version}.json").read_text(encoding="utf-8"))
    ids, torrents = [], []
    for n in range(count):
        torrent_id = hashlib.sha1(b"magnetd-bench-%d" % n).hexdigest()
        torrent = dict(template)
        torrent.update(hash=torrent_id, infohash_v1=torrent_id, name=f"bench file {n}")
        torrent["magnet_uri"] = f"magnet:?xt=urn:btih:{torrent_id}&dn=bench%20file%20{n}"
        ids.append(torrent_id)
        torrents.append(torrent)
    return ids, json.dumps(torrents, separators=(",", ":")).encode()


def case_info_decode() -> Call:
    import responses

    from magnetd.delivery.qbittorrent import Client

    ids, body = info_body(os.environ.get("CPU_MICRO_INFO", "4.5.2"))
    mock = responses.RequestsMock(assert_all_requests_are_fired=False)
    mock.start()
    mock.add(responses.POST, "http://qbt.test/api/v2/auth/login", body="Ok.")
    mock.add(
        responses.POST, "http://qbt.test/api/v2/torrents/info", body=body, content_type="application/json"
    )
    client = Client("http://qbt.test/", "admin", "pw")

    def call() -> None:
        found = client.present(ids)
        assert len(found) == len(ids)
        mock.calls.reset()  # responses keeps every request and its ~1 MB answer otherwise

    return call


def case_parse_magnet() -> Call:
    from magnetd.intake import items

    data = (MAGNET + "\n").encode()

    def call() -> None:
        items.parse_item("Some.Show.S01E02.magnet", data)

    return call


def case_layered() -> Call:
    from pathlib import PurePath

    from magnetd.intake import options
    from magnetd.model import AddOptions

    defaults = AddOptions(savepath="/srv/downloads", tags=("magnetd",), paused=False)
    folders = {"books": AddOptions(tags=("reading",), savepath="/srv/books")}
    rel = str(PurePath("books/some file.magnet"))
    own = AddOptions()

    def call() -> None:
        options.layered(defaults, folders, rel, own)

    return call


def case_inotify() -> Call:
    import queue

    from inotify_simple import Event, flags

    from magnetd.intake.inotify import InotifyReader

    out: queue.SimpleQueue[Any] = queue.SimpleQueue()
    reader = InotifyReader(Path("/srv/magnetd/inbox"), out)
    reader._prefixes[1] = "/srv/magnetd/inbox/"  # as if watched: handle() only reads this map
    events = [Event(1, int(flags.MOVED_TO), 0, f"file {n}.magnet") for n in range(1000)]
    state = {"left": 0}

    def call() -> None:  # one event per call; a list of 1,000 handled every 1,000th call
        if state["left"] == 0:
            reader.handle(events)
            while not out.empty():
                out.get_nowait()
            state["left"] = len(events)
        state["left"] -= 1

    return call


def child(case: str, calls: int, runs: int) -> None:
    """Time ``calls`` calls of ``case`` ``runs`` times (after one warm-up run); print µs per call."""
    import magnetd

    make: Callable[[], Call] = globals()[f"case_{case}"]
    call = make()
    figures = []
    for run in range(runs + 1):
        start = time.thread_time()
        for _ in range(calls):
            call()
        if run:
            figures.append((time.thread_time() - start) / calls * 1e6)
    print(json.dumps({"module": magnetd.__file__, "us": figures}))


# -- the parent: versions, runs, callgrind ---------------------------------------------------------


def extract(rev: str, into: Path) -> Path:
    """``magnetd/`` as it was at ``rev``, under ``into``; returns the tree to put on ``PYTHONPATH``."""
    tree = into / rev.replace("/", "_")
    tree.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", rev, "magnetd"], cwd=ROOT, check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree


def child_command(case: str, calls: int, runs: int) -> list[str]:
    return [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        case,
        "--calls",
        str(calls),
        "--runs",
        str(runs),
    ]


def child_env(tree: Path, info: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree), "CPU_MICRO_INFO": info}


PER_BATCH = {"info_decode"}
"""Cases whose call handles 1,000 torrents: they make a hundredth of ``--calls``."""


def case_calls(case: str, calls: int) -> int:
    return max(1, calls // 100) if case in PER_BATCH else calls


def timed(case: str, tree: Path, calls: int, runs: int, info: str) -> list[float]:
    done = subprocess.run(
        child_command(case, case_calls(case, calls), runs),
        env=child_env(tree, info),
        check=True,
        capture_output=True,
        text=True,
    )
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    if not str(answer["module"]).startswith(str(tree)):
        raise RuntimeError(f"the child loaded {answer['module']}, not the tree {tree}")
    figures: list[float] = answer["us"]
    return figures


def instructions(case: str, tree: Path, calls: int, info: str, scratch: Path) -> int:
    """The main thread's instructions for one child run of ``calls`` calls (and one warm-up run)."""
    out = scratch / f"cg-{len(list(scratch.iterdir()))}"
    out.mkdir()
    command = ["valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={out}/cg"]
    command += child_command(case, calls, 1)
    subprocess.run(command, env=child_env(tree, info), check=True, capture_output=True)
    match = TOTALS.search((out / "cg-01").read_text(encoding="utf-8"))
    if match is None:
        raise RuntimeError(f"no totals in {out}/cg-01")
    return int(match.group(1))


def measure(args: argparse.Namespace, versions: dict[str, Path], scratch: Path) -> None:
    for case in args.cases:
        figures: dict[str, list[float]] = {name: [] for name in versions}
        for _ in range(args.repeats):  # alternate, so drifting load hits both alike
            for name, tree in versions.items():
                if args.callgrind:
                    calls = case_calls(case, args.calls)
                    low = instructions(case, tree, calls, args.info, scratch)
                    high = instructions(case, tree, 2 * calls, args.info, scratch)
                    figures[name].append((high - low) / (2 * calls))  # warm-up + run: 2 x calls more
                else:
                    figures[name].extend(timed(case, tree, args.calls, args.runs, args.info))
        unit = "instructions" if args.callgrind else "µs CPU"
        medians = {name: statistics.median(values) for name, values in figures.items()}
        for name, values in figures.items():
            spread = f"min {min(values):,.2f} max {max(values):,.2f}, n={len(values)}"
            print(f"{case} [{name}]: {unit} per call, median {medians[name]:,.2f} ({spread})")
        if len(medians) == 2:
            old, new = medians[args.against], medians[CURRENT]
            print(f"{case}: {CURRENT} / {args.against} = {new / old:.3f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("cases", nargs="*", default=list(CASES), help=f"of {', '.join(CASES)} (default all)")
    parser.add_argument("--calls", type=int, default=5000, help="calls per run (default 5000)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per child process (default 5)")
    parser.add_argument("--repeats", type=int, default=3, help="child processes per version (default 3)")
    parser.add_argument("--against", help="a git revision to compare with")
    parser.add_argument("--callgrind", action="store_true", help="count instructions under valgrind")
    parser.add_argument("--info", default="4.5.2", choices=["4.5.2", "5.3"], help="info_decode's objects")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = set(args.cases) - set(CASES)
    if unknown:
        parser.error(f"unknown cases: {', '.join(sorted(unknown))}")
    if args.child:
        child(args.child, args.calls, args.runs)
        return
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        versions = {CURRENT: ROOT}
        if args.against:
            versions[args.against] = extract(args.against, scratch / "trees")
        (scratch / "cg").mkdir()
        measure(args, versions, scratch / "cg")


if __name__ == "__main__":
    main()
