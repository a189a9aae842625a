"""The files waiting in the inbox: when each is ready, and reading one safely.

A file is read only once its writer is done: renamed-in files at once; on
Linux, files written in place once no process holds them open for writing
(a read lease cannot be taken while one does); elsewhere once size and mtime
have stopped changing for ``settle`` seconds. Symlinks are never followed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from magnetd.intake.watcher import in_hidden_dir, is_candidate
from magnetd.model import Arrival, Rejected, Seen

EMPTY_GRACE = 5.0  # an empty file may be a placeholder about to be replaced (browsers do this)
F_SETLEASE = 1024  # Linux fcntl commands, absent from Python's fcntl module
F_RDLCK, F_UNLCK = 0, 2


class Busy(Exception):
    """The file is still being written: try again later."""


class Gone(Exception):
    """The file vanished before it could be read."""


@dataclass(slots=True)
class Waiting:
    """One inbox file and what is known about its readiness and its attempts.

    Its path is kept as text (``where``; :attr:`path` makes a ``Path`` of it): a ``Path``
    held for each of thousands of waiting files cost ~220 bytes more each.
    """

    where: str
    first_seen: float
    first_seen_wall: float
    how: Arrival
    size: int = -1
    mtime: float = -1.0
    attempts: int = 0
    not_before: float = 0.0
    last_error: str | None = None
    identity: bytes | None = None  # device, inode, size and mtime when last read (see identity())
    handed: int = 0  # the pipeline pass that handed it over (pipeline.Pipeline.number), 0: none

    @property
    def path(self) -> Path:
        return Path(self.where)

    @property
    def name(self) -> str:
        return os.path.basename(self.where)


STAMP_SHARED = 0.001
"""Seconds within which files noted share their first-seen times (their order is kept)."""


class Inbox:
    """Waiting files in arrival order, for the one thread that owns the inbox."""

    def __init__(self, root: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.root = root
        self.clock = clock
        self._files: dict[str, Waiting] = {}  # by os.fspath(path)
        self._stamp: tuple[float, float] = (-1.0, 0.0)  # (monotonic, wall) of the last new file

    def __len__(self) -> int:
        return len(self._files)

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str | os.PathLike) and os.fspath(path) in self._files

    def note(self, seen: Seen) -> Waiting | None:
        """Record a path the watcher or a scan reported; its record if that made it due now."""
        where = os.fspath(seen.path)
        if not is_candidate(os.path.basename(where)) or in_hidden_dir(where, self.root):
            return None
        known = self._files.get(where)
        if known is None:
            now, wall = self._times()
            if seen.how == Arrival.SCAN:  # found by a scan: its age counts from when it was written
                with contextlib.suppress(OSError):
                    age = max(0.0, wall - os.lstat(where).st_mtime)
                    now, wall = now - age, wall - age
            known = self._files[where] = Waiting(where, now, wall, seen.how)
            return known
        if seen.how.complete:
            known.how = seen.how
            if known.attempts == 0:
                known.not_before = 0.0  # the writer is done: try it now
                return known
        return None

    def _times(self) -> tuple[float, float]:
        """Now, on the monotonic clock and the wall clock: the same two objects for every file
        noted within a millisecond (a large drop keeps one per waiting file otherwise)."""
        now = self.clock()
        if 0.0 <= now - self._stamp[0] < STAMP_SHARED:
            return self._stamp
        self._stamp = (now, time.time())
        return self._stamp

    def forget(self, path: Path | str) -> None:
        self._files.pop(os.fspath(path), None)

    def due(self) -> list[Waiting]:
        """Files whose back-off has passed, oldest first."""
        now = self.clock()
        ready = [w for w in self._files.values() if w.not_before <= now]
        ready.sort(key=lambda w: w.first_seen)
        return ready

    def oldest(self) -> Waiting | None:
        return min(self._files.values(), key=lambda w: w.first_seen, default=None)

    def next_due(self) -> float | None:
        """The earliest monotonic time at which a waiting file may be tried again."""
        return min((w.not_before for w in self._files.values()), default=None)

    def retry_later(self, waiting: Waiting, delay: float, error: str | None = None) -> None:
        waiting.not_before = self.clock() + delay
        if error is not None:
            waiting.last_error = error


_WINDOWS = sys.platform == "win32"
# Never through a symbolic link, never blocking on a pipe; bytes as they are on Windows.
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
_READ_FLAGS |= getattr(os, "O_BINARY", 0)


def read(waiting: Waiting, max_bytes: int, settle: float, now: float | None = None) -> bytes:
    """The file's bytes once it is complete; Busy, Gone, Rejected or OSError otherwise."""
    path = waiting.where
    if _WINDOWS and os.path.islink(path):
        raise Rejected("symlink", "the file is a symbolic link; links are never followed")
    try:
        fd = os.open(path, _READ_FLAGS)
    except FileNotFoundError:
        raise Gone(path) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Rejected("symlink", "the file is a symbolic link; links are never followed") from None
        raise
    try:
        return _read_open(fd, waiting, max_bytes, settle, time.time() if now is None else now)
    finally:
        os.close(fd)


def _read_open(fd: int, waiting: Waiting, max_bytes: int, settle: float, now: float) -> bytes:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise Rejected("not_a_file", "not a regular file (a pipe, device or socket)")
    if info.st_size > max_bytes:
        detail = f"{info.st_size} bytes is over limits.max_file_bytes ({max_bytes}); not read"
        raise Rejected("too_large", detail)
    # A renamed-in or closed file is complete: only files seen otherwise need the lease check.
    lease = None if waiting.how.complete else _take_lease(fd)
    try:
        if lease is False:
            raise Busy("a writer still has the file open")
        if lease is None and not _settled(waiting, info, settle, now):
            raise Busy("still changing")
        if info.st_size == 0 and now - info.st_mtime < EMPTY_GRACE:
            waiting.size = 0
            raise Busy("empty, may be a placeholder")
        data = _read_all(fd, max_bytes, info.st_size)
        waiting.identity = identity(info)
    finally:
        if lease:
            _release_lease(fd)
    if len(data) > max_bytes:
        raise Rejected("too_large", f"grew over limits.max_file_bytes ({max_bytes}) while read")
    return data


def identity(info: os.stat_result) -> bytes:
    """What tells one version of a file from another: device, inode, size, modification time.

    Packed in 32 bytes: as a tuple of four ints it took ~170 bytes of every waiting file.
    """
    numbers = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
    try:
        return _IDENTITY.pack(*numbers)
    except struct.error:  # a number past 64 bits (a 128-bit file id): exact all the same
        return repr(numbers).encode()


_IDENTITY = struct.Struct("=QQqq")


def unchanged(waiting: Waiting) -> bool:
    """Whether the inbox file is still the one that was read (False if replaced or rewritten)."""
    if waiting.identity is None:
        return True
    try:
        return identity(os.lstat(waiting.where)) == waiting.identity
    except OSError:
        return True  # gone or unreadable: the move itself reports it


def _read_all(fd: int, max_bytes: int, size: int) -> bytes:
    """Up to ``max_bytes + 1`` bytes, until the end of the file.

    One ``read`` when the file still has its ``fstat`` size: asked for one byte more, it
    gives exactly that size. A file that grew or gave less reads on until a read is empty.
    """
    first = os.read(fd, min(size, max_bytes) + 1)
    if len(first) == size:
        return first
    chunks, total = [first], len(first)
    while total <= max_bytes:
        chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def _settled(waiting: Waiting, info: os.stat_result, settle: float, now: float) -> bool:
    """Renamed-in or closed files are complete; others once unchanged for ``settle`` seconds."""
    if waiting.how.complete:
        return True
    same = (waiting.size, waiting.mtime) == (info.st_size, info.st_mtime)
    waiting.size, waiting.mtime = info.st_size, info.st_mtime
    return now - info.st_mtime >= settle and (same or waiting.how == Arrival.SCAN)


def _take_lease(fd: int) -> bool | None:
    """Linux: True if no writer has the file open (lease held), False if one has, None if unknown."""
    if not sys.platform.startswith("linux"):
        return None
    import fcntl

    try:
        fcntl.fcntl(fd, F_SETLEASE, F_RDLCK)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EBUSY):
            return False
        return None  # not the owner, or a file system without leases: fall back to settling
    return True


def _release_lease(fd: int) -> None:
    import fcntl

    with contextlib.suppress(OSError):  # closing the descriptor drops the lease anyway
        fcntl.fcntl(fd, F_SETLEASE, F_UNLCK)
