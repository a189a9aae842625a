"""CPU time of magnetd's inotify reading thread per file renamed into the inbox.

Starts ``InotifyReader`` on a temporary inbox, renames ``--files`` staged files in
(one ``rename(2)`` each, from a sibling folder on the same file system), takes
records from its queue until every file was reported, and reads the reading
thread's own CPU clock (user + system, ``pthread_getcpuclockid``). That clock
counts only the reader's thread, so it is far less disturbed by other load on
the machine than wall-clock time.

``--against REV`` also loads ``magnetd/intake/inotify.py`` as it was at git
revision ``REV`` and alternates runs of the two versions::

    .venv/bin/python -m benchmarks.inotify_cpu --runs 3 --against 6f69404

On a busy machine even a thread's CPU time varies from run to run (how many
events each ``read(2)`` finds depends on how the two threads are scheduled).
``--callgrind`` counts instructions instead: each run is a child process under
``valgrind --tool=callgrind --separate-threads=yes`` (about 30 s each), and the
figure is the reading thread's instruction count (the process's second thread),
which other load does not change.
"""

from __future__ import annotations

import argparse
import importlib.util
import queue
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from magnetd.model import Arrival

MODULE = "magnetd/intake/inotify.py"
THREAD_NAME = "magnetd-inotify"
ROOT = Path(__file__).resolve().parent.parent
CURRENT = "current"
TOTALS = re.compile(r"^totals:\s+(\d+)", re.MULTILINE)
Figures = dict[str, list[float]]  # version -> one figure per run


@dataclass(frozen=True)
class Run:
    """One run: the reading thread's CPU seconds, and how long the renames and the drain took."""

    files: int
    cpu_s: float
    wall_s: float

    @property
    def cpu_us_per_file(self) -> float:
        return self.cpu_s / self.files * 1e6


def load_current() -> ModuleType:
    return importlib.import_module("magnetd.intake.inotify")


def load_revision(revision: str, folder: Path) -> ModuleType:
    """``magnetd/intake/inotify.py`` as committed at ``revision``, imported under its own name."""
    text = subprocess.run(
        ["git", "show", f"{revision}:{MODULE}"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    path = folder / f"inotify_at_{revision.replace('/', '_')}.py"
    path.write_text(text, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # dataclasses and typing look modules up by name
    spec.loader.exec_module(module)
    return module


def load(name: str, scratch: Path) -> ModuleType:
    return load_current() if name == CURRENT else load_revision(name, scratch)


def reader_thread() -> threading.Thread:
    """The reading thread started by ``InotifyReader.start`` (found by its name)."""
    for thread in threading.enumerate():
        if thread.name == THREAD_NAME:
            return thread
    raise RuntimeError(f"no thread named {THREAD_NAME}")


def thread_cpu(thread: threading.Thread) -> float:
    """CPU seconds (user + system) ``thread`` has used so far."""
    if thread.ident is None:
        raise RuntimeError("thread not started")
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


def stage(folder: Path, files: int) -> list[Path]:
    folder.mkdir()
    paths = [folder / f".{index:06d}.magnet.tmp" for index in range(files)]
    for index, path in enumerate(paths):
        path.write_text(f"magnet:?xt=urn:btih:{index:040x}\n", encoding="ascii")
    return paths


def drain(out: queue.SimpleQueue[Any], files: int, timeout: float) -> None:
    """Take records until ``files`` renamed-in files were reported; fail on a rescan request."""
    moved = 0
    deadline = time.monotonic() + timeout
    while moved < files:
        seen = out.get(timeout=max(0.0, deadline - time.monotonic()))
        if seen.how == Arrival.ERROR:
            raise RuntimeError("the reader asked for a rescan (queue overflow?): run invalid")
        moved += seen.how == Arrival.MOVED


def one_run(module: ModuleType, workdir: Path, files: int) -> Run:
    top = Path(tempfile.mkdtemp(prefix="inotify-cpu-", dir=workdir))
    try:
        staged = stage(top / "stage", files)
        inbox = top / "inbox"
        inbox.mkdir()
        out: queue.SimpleQueue[Any] = queue.SimpleQueue()
        reader = module.InotifyReader(inbox, out)
        reader.start()
        try:
            thread = reader_thread()
            before, started = thread_cpu(thread), time.monotonic()
            for index, path in enumerate(staged):
                path.rename(inbox / f"{index:06d}.magnet")
            drain(out, files, timeout=60 + files * 0.01)
            cpu = thread_cpu(thread) - before
            return Run(files, cpu, time.monotonic() - started)
        finally:
            reader.stop()
    finally:
        shutil.rmtree(top, ignore_errors=True)


def callgrind_run(variant: str, against: str | None, files: int, scratch: Path) -> int:
    """Instructions the reading thread executed in one run of ``variant``, under callgrind."""
    out = scratch / f"cg-{len(list(scratch.iterdir()))}"
    out.mkdir()
    command = ["valgrind", "--tool=callgrind", "--separate-threads=yes"]
    command += [f"--callgrind-out-file={out}/cg", sys.executable, "-m", "benchmarks.inotify_cpu"]
    command += ["--runs", "1", "--files", str(files), "--only", variant]
    if against:
        command += ["--against", against]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    reader = out / "cg-02"  # thread 1 is the main thread; the reader is the only other one
    match = TOTALS.search(reader.read_text(encoding="utf-8"))
    if match is None:
        raise RuntimeError(f"no totals in {reader}")
    return int(match.group(1))


def measure_cpu(variants: dict[str, ModuleType], runs: int, files: int, workdir: Path) -> Figures:
    """µs of the reading thread's CPU per file, each run; prints the wall-clock drains."""
    done: dict[str, list[Run]] = {name: [] for name in variants}
    for _ in range(runs):  # alternate, so drifting load hits both alike
        for name, module in variants.items():
            done[name].append(one_run(module, workdir, files))
    print(f"{files} files renamed in, {runs} runs each; wall-clock drain (s):")
    for name, results in done.items():
        print(f"  {name}: " + ", ".join(f"{run.wall_s:.2f}" for run in results))
    return {name: [run.cpu_us_per_file for run in results] for name, results in done.items()}


def measure_callgrind(names: list[str], against: str | None, runs: int, files: int) -> Figures:
    """Instructions of the reading thread per file, each run."""
    figures: Figures = {name: [] for name in names}
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(runs):
            for name in names:
                figures[name].append(callgrind_run(name, against, files, Path(scratch)) / files)
    return figures


def report(figures: Figures, unit: str, against: str | None) -> None:
    medians = {}
    for name, values in figures.items():
        medians[name] = statistics.median(values)
        listed = ", ".join(f"{value:,.2f}" for value in values)
        print(f"{name}: {unit} per file, runs: {listed}; median {medians[name]:,.2f}")
    if against and CURRENT in medians and against in medians:
        print(f"{CURRENT} / {against}: {medians[CURRENT] / medians[against]:.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--against", metavar="REV", help="also measure inotify.py as at this git revision")
    parser.add_argument("--only", metavar="NAME", help=f"measure one version only: {CURRENT} or REV")
    parser.add_argument("--callgrind", action="store_true", help="count instructions under valgrind")
    parser.add_argument("--workdir", type=Path, default=None, help="where the temporary folders go")
    args = parser.parse_args(argv)
    names = [CURRENT] + ([args.against] if args.against else [])
    if args.only:
        names = [name for name in names if name == args.only]
    if args.callgrind:
        report(measure_callgrind(names, args.against, args.runs, args.files), "instructions", args.against)
        return 0
    workdir = args.workdir or Path(tempfile.gettempdir())
    with tempfile.TemporaryDirectory() as scratch:
        variants = {name: load(name, Path(scratch)) for name in names}
        report(measure_cpu(variants, args.runs, args.files, workdir), "µs CPU", args.against)
    return 0


if __name__ == "__main__":
    sys.exit(main())
