"""Optional profiling (``--profile``): sample the daemon with py-spy during a scenario.

py-spy is not required (``pip install py-spy``). Its raw output (collapsed
stacks, wall-clock, every thread) is kept, with a short summary of where the
main thread spent its time.
"""

from __future__ import annotations

import collections
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

RATE = 100  # samples per second
_LOCATION = re.compile(r" \((?P<file>[^()]*?)(?::\d+)?\)$")


def py_spy() -> str | None:
    """The py-spy program: on PATH or beside this Python."""
    beside = Path(sys.executable).parent / "py-spy"
    return shutil.which("py-spy") or (str(beside) if beside.exists() else None)


class Spy:
    """``with Spy(pid, raw_file):`` records the process while the block runs (no-op without py-spy)."""

    def __init__(self, pid: int, raw: Path) -> None:
        self.pid = pid
        self.raw = raw
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Spy:
        program = py_spy()
        if program is None:
            print("   (--profile: py-spy not found; pip install py-spy)", flush=True)
            return self
        command = [program, "record", "--idle", "--threads", "-r", str(RATE), "-f", "raw"]
        command += ["-o", str(self.raw), "-p", str(self.pid)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # let it attach before the scenario starts its clock
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if self.raw.exists():
            summary = self.raw.with_suffix(".top.txt")
            summary.write_text("\n".join(summarize(self.raw)) + "\n", encoding="utf-8")


def summarize(raw: Path, top: int = 25) -> list[str]:
    """Per thread, the functions it spent most wall-clock time in (inclusive), as text lines."""
    threads: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    totals: collections.Counter[str] = collections.Counter()
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        thread, *frames = stack.split(";")
        totals[thread] += int(count)
        for name in {_short(frame) for frame in frames}:
            threads[thread][name] += int(count)
    lines = [f"py-spy, {RATE} samples/s, wall-clock (waiting included), inclusive, per thread"]
    for thread, total in totals.most_common():
        shown = [
            (n, name) for name, n in threads[thread].items() if n < total
        ]  # drop the always-there frames
        shown.sort(key=lambda item: (-item[0], item[1]))
        lines.append(f"\n{thread}: {total} samples")
        lines += [f"{100 * n / total:5.1f}%  {name}" for n, name in shown[:top]]
    return lines


def _short(frame: str) -> str:
    """``Spool.sent (magnetd/spool.py:118)`` → ``Spool.sent (magnetd/spool.py)``."""
    match = _LOCATION.search(frame)
    if match is None:
        return frame
    return f"{frame[: match.start()]} ({match['file']})"
