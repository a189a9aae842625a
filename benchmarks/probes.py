"""Cheap observers: qBittorrent's own log, a folder's arrivals (inotify), a process's /proc.

Every time recorded here is ``time.monotonic()`` taken by this process at the
moment it sees the event, so all figures share one clock.
"""

from __future__ import annotations

import ctypes
import os
import re
import select
import struct
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import requests

from tests.qbt import QbtApi

ADDED = re.compile(r'^Added new torrent\. Torrent: "(?P<name>.*)"$')
"""How qbittorrent-nox 4.5.2 (English locale) logs every add, from the WebAPI or the watched folder."""

IN_CLOEXEC = 0o2000000
IN_MOVED_TO = 0x00000080
IN_Q_OVERFLOW = 0x00004000
_EVENT = struct.Struct("iIII")


class BenchError(Exception):
    """A scenario could not finish (timeout, a part that died); the message says why."""


class Arrivals:
    """Names seen so far, each with the monotonic time it was first seen; waitable."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self.error: str | None = None
        self._cond = threading.Condition()

    def record(self, names: Iterable[str], when: float) -> None:
        with self._cond:
            for name in names:
                self.times.setdefault(name, when)
            self._cond.notify_all()

    def fail(self, error: str) -> None:
        with self._cond:
            self.error = error
            self._cond.notify_all()

    def wait(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        """Block until ``done()`` (checked under the lock) or raise BenchError after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not done():
                if self.error:
                    raise BenchError(f"{what}: observer failed: {self.error}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError(f"gave up after {timeout:.0f} s waiting for {what}")
                self._cond.wait(min(left, 0.5))

    def wait_name(self, name: str, timeout: float, what: str) -> float:
        """The time ``name`` was seen, waiting for it if needed."""
        self.wait(lambda: name in self.times, timeout, what)
        return self.times[name]

    def wait_count(self, n: int, prefix: str, timeout: float, what: str) -> float:
        """The time the ``n``-th name starting with ``prefix`` was seen."""
        self.wait(lambda: self._count(prefix) >= n, timeout, what)
        with self._cond:
            return max(t for name, t in self.times.items() if name.startswith(prefix))

    def _count(self, prefix: str) -> int:
        """Names starting with ``prefix`` (call with the lock held)."""
        return sum(1 for name in self.times if name.startswith(prefix))


class LogWatcher(threading.Thread):
    """Polls ``log/main?last_known_id=N`` every ``interval`` s and notes each torrent added."""

    def __init__(self, api: QbtApi, interval: float) -> None:
        super().__init__(name="bench-log", daemon=True)
        self.api = api
        self.interval = interval
        self.seen = Arrivals()
        self.polls = 0
        self._halt = threading.Event()
        entries = api.log_main(-1)
        self.last_id = int(entries[-1]["id"]) if entries else -1

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                self.poll()
                self._halt.wait(self.interval)
        except (requests.RequestException, ValueError) as exc:
            self.seen.fail(repr(exc))

    def poll(self) -> None:
        entries = self.api.log_main(self.last_id)
        now = time.monotonic()
        self.polls += 1
        if not entries:
            return
        names = [m["name"] for e in entries if (m := ADDED.match(str(e.get("message", ""))))]
        self.last_id = int(entries[-1]["id"])
        if names:
            self.seen.record(names, now)

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(5)


class FolderWatcher(threading.Thread):
    """Counts files renamed into one folder (inotify ``IN_MOVED_TO``), with their arrival times."""

    def __init__(self, folder: Path) -> None:
        super().__init__(name="bench-inotify", daemon=True)
        self.folder = folder
        self.seen = Arrivals()
        self._halt = threading.Event()
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        if libc.inotify_add_watch(self.fd, os.fsencode(folder), IN_MOVED_TO) < 0:
            os.close(self.fd)
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {folder} failed")

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                ready, _, _ = select.select([self.fd], [], [], 0.1)
                if ready:
                    self._read(os.read(self.fd, 1 << 20), time.monotonic())
        except OSError as exc:
            self.seen.fail(repr(exc))

    def _read(self, data: bytes, now: float) -> None:
        names, offset = [], 0
        while offset < len(data):
            _wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
            offset += _EVENT.size
            if mask & IN_Q_OVERFLOW:
                self.seen.fail("inotify queue overflow (raise fs.inotify.max_queued_events)")
            raw = data[offset : offset + length].rstrip(b"\0")
            offset += length
            if raw:
                names.append(os.fsdecode(raw))
        self.seen.record(names, now)

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(5)
        os.close(self.fd)


class AnswerProbe(threading.Thread):
    """Notes the first moment a WebUI answers HTTP at all (any status), polling every 10 ms."""

    def __init__(self, url: str, interval: float = 0.01) -> None:
        super().__init__(name="bench-answer", daemon=True)
        self.url = f"{url}api/v2/app/webapiVersion"
        self.interval = interval
        self.answered_at: float | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                requests.get(self.url, timeout=1)
            except requests.RequestException:
                self._halt.wait(self.interval)
                continue
            self.answered_at = time.monotonic()
            return

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(5)


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """CPU time of process ``pid`` (all its threads, ended ones too), or of its thread ``tid``, so far.

    Exact where the kernel tells it: the process's CPU clock (``clock_gettime``), a thread's
    ``se.sum_exec_runtime`` in /proc. Otherwise user + system time from /proc's ``stat``,
    which counts in 10 ms steps: at 2,000 files (about 0.2 s of CPU) one step is 5 µs per
    file, and a sum over five threads moved CPU per file by ±15 % from run to run.
    """
    exact = _process_clock(pid) if tid is None else _thread_runtime(pid, tid)
    if exact is not None:
        return exact
    where = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    text = Path(where).read_text()
    fields = text.rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of stat(5)
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def _process_clock(pid: int) -> float | None:
    """The CPU clock of another process (Linux: ``MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED)``)."""
    if not hasattr(time, "clock_gettime"):
        return None
    try:
        return time.clock_gettime((~pid << 3) | 2)
    except OSError:
        return None


def _thread_runtime(pid: int, tid: int) -> float | None:
    """A thread's ``se.sum_exec_runtime`` (milliseconds in /proc/PID/task/TID/sched), in seconds."""
    try:
        text = Path(f"/proc/{pid}/task/{tid}/sched").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("se.sum_exec_runtime"):
            return float(line.rsplit(":", 1)[1]) / 1000
    return None


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set size (``VmHWM``) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"no VmHWM in /proc/{pid}/status")
