"""Durable file moves: inbox → ``sent/`` or ``failed/``, never overwriting, never half-done.

Every move is a rename on one file system. Whole-file writes go to a hidden
temporary file, are fsynced, then renamed into place. Directories touched by
a batch are fsynced once, at :meth:`Spool.flush`.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from magnetd.clock import now_iso
from magnetd.config import Folders
from magnetd.intake.links import shown_text
from magnetd.model import LineError

ERROR_SUFFIX = ".error.json"


def ensure_folders(folders: Folders) -> None:
    """Create every configured folder that is missing."""
    for path in folders.all():
        path.mkdir(parents=True, exist_ok=True)


def fsync_dir(path: str | Path) -> None:
    """Make a directory's entries durable (POSIX only; a no-op elsewhere)."""
    if sys.platform == "win32":
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, durable: bool = True) -> None:
    """Write ``data`` to ``path`` through a hidden temporary file, renamed: a reader never sees
    half of it. ``durable``: fsynced before the rename, so that it survives a power cut too."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temp, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _names(base: str, name: str) -> Iterator[str]:
    """``base/name``, then ``stem.2.suffix``, ``stem.3.suffix`` … (plain strings: this is hot)."""
    yield os.path.join(base, name)
    stem, dot, ext = name.rpartition(".")
    stem, suffix = (stem, dot + ext) if stem else (name, "")
    number = 1
    while True:
        number += 1
        yield os.path.join(base, f"{stem}.{number}{suffix}")


def free_name(directory: Path, name: str) -> Path:
    """``directory/name``, or ``stem.N.suffix`` with the lowest N that is free.

    A name is taken if a file, a link or an error record already uses it.
    """
    for candidate in _names(os.fspath(directory), name):
        if not os.path.lexists(candidate) and not os.path.lexists(candidate + ERROR_SUFFIX):
            return Path(candidate)
    raise AssertionError("unreachable: the names never run out")


Rename = Callable[[str, str], None]


def _renameat2() -> Rename | None:
    """``rename`` that refuses to replace an existing target (Linux ``renameat2``), if libc has it."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return None  # glibc before 2.28, or another libc without it
    # No argtypes: ints and bytes convert as they are (an int, a char *), with half the cost
    # of a call that checks them against a declared list; the flags fit an int.

    encoding, errors = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()  # os.fsencode's

    def rename_noreplace(source: str, target: str) -> None:
        if function(
            _AT_FDCWD,
            source.encode(encoding, errors),
            _AT_FDCWD,
            target.encode(encoding, errors),
            _RENAME_NOREPLACE,
        ):
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), source, None, target)

    return rename_noreplace


_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_NOREPLACE_UNSUPPORTED = (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP)
rename_noreplace = _renameat2()


def _copy_across(source: Path, target: Path) -> None:
    """Move between file systems: a durable copy under a hidden name, renamed, then the unlink."""
    if source.is_symlink():
        temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        os.symlink(os.readlink(source), temp)
        os.rename(temp, target)
    else:
        write_atomic(target, source.read_bytes())
    fsync_dir(target.parent)
    source.unlink()


def _error_file(path: Path) -> Path:
    return path.with_name(path.name + ERROR_SUFFIX)


class Spool:
    """Moves files out of the inbox for the one thread that owns the inbox."""

    def __init__(
        self, folders: Folders, noreplace: Callable[[str, str], None] | None = rename_noreplace
    ) -> None:
        self.folders = folders
        self._dirty: set[str] = set()  # folders to fsync, as strings: hashing Paths per file is slow
        # a sub-folder of the inbox -> its folder in sent/ (made), as a string, and its own in the inbox
        self._sent_dirs: dict[str, tuple[Path, str, str]] = {}
        self._made: set[Path] = set()  # target folders known to exist
        self._inbox_prefix = os.path.join(os.fspath(folders.inbox), "")  # the inbox, with a separator
        self.noreplace = noreplace  # None: check for a free name, then rename

    def relative(self, path: Path | str) -> str:
        """``path`` relative to the inbox, as ``str(PurePath)`` writes it (``books/a.magnet``).

        Its sub-folder is kept in sent/ and failed/. A string cut from the path's own: every
        file of a large drop keeps one, and ``Path.relative_to`` costs a parse and ~150 bytes.
        """
        text = os.fspath(path)
        if text.startswith(self._inbox_prefix):
            return text[len(self._inbox_prefix) :]
        return str(Path(text).relative_to(self.folders.inbox))

    def _forget_folder(self, directory: Path) -> None:
        self._made.discard(directory)
        self._sent_dirs = {sub: dirs for sub, dirs in self._sent_dirs.items() if dirs[0] != directory}

    def _folder(self, directory: Path) -> Path:
        if directory not in self._made:
            directory.mkdir(parents=True, exist_ok=True)
            self._made.add(directory)
        return directory

    def _target(self, root: Path, rel: str) -> Path:
        sub, name = os.path.split(rel)
        return free_name(self._folder(root / sub), name)

    def _rename(self, source: Path, target: Path) -> None:
        try:
            os.rename(source, target)
        except FileNotFoundError:
            if not source.exists() and not source.is_symlink():
                raise
            self._forget_folder(target.parent)  # the folder was removed behind our back
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(source, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            _copy_across(source, target)  # sent/ or failed/ on another file system
        self._dirty.add(os.path.dirname(source))
        self._dirty.add(os.path.dirname(target))

    def sent(self, path: Path | str, rel: str | None = None) -> str:
        """Move a fully sent file to ``sent/``; return where it went.

        With ``renameat2`` the free name is found by the rename itself: one
        system call per file, and no window in which another writer could
        take the name between a check and the move.
        """
        rel = rel or self.relative(path)
        if self.noreplace is None:
            return os.fspath(self._rename_checked(Path(path), rel))
        source = os.fspath(path)
        sub, name = os.path.split(rel)  # strings: this runs once per file of a large drop
        dirs = self._sent_dirs.get(sub)
        if dirs is None:
            made = self._folder(self.folders.sent / sub)
            dirs = self._sent_dirs[sub] = (made, os.fspath(made), os.path.dirname(source))
        _, target_dir, source_dir = dirs
        for candidate in _names(target_dir, name):
            try:
                self.noreplace(source, candidate)
            except FileExistsError:
                continue
            except OSError as exc:
                if exc.errno not in _NOREPLACE_UNSUPPORTED:  # e.g. a vanished folder: made again there
                    return os.fspath(self._rename_checked(Path(path), rel))
                self.noreplace = None  # a file system without it: check, then rename
                return self.sent(path, rel)
            self._dirty.add(source_dir)
            self._dirty.add(target_dir)
            return candidate
        raise AssertionError("unreachable: the names never run out")

    def _rename_checked(self, path: Path, rel: str) -> Path:
        """The portable way, which also handles a vanished folder and another file system."""
        target = self._target(self.folders.sent, rel)
        self._rename(path, target)
        return target

    def failed(self, path: Path, record: dict[str, Any], data: bytes | None = None) -> Path:
        """Put a file in ``failed/`` with ``<name>.error.json`` beside it.

        With ``data``, that content is written there and the inbox file is left
        for the caller (a partial file); otherwise the inbox file itself moves.
        The error record is written first so a file in ``failed/`` always has one.
        """
        target = self._target(self.folders.failed, self.relative(path))
        payload = json.dumps(record, indent=2, ensure_ascii=False).encode("utf-8") + b"\n"
        write_atomic(_error_file(target), payload)
        if data is None:
            self._rename(path, target)
        else:
            write_atomic(target, data)
            self._dirty.add(os.path.dirname(target))
        return target

    def rewrite(self, path: Path, data: bytes) -> None:
        """Replace an inbox file's content atomically (the unsent rest of a queue file)."""
        write_atomic(path, data)
        self._dirty.add(os.path.dirname(path))

    def flush(self) -> None:
        """fsync every directory changed since the last flush."""
        dirty, self._dirty = self._dirty, set()
        for directory in dirty:
            with contextlib.suppress(OSError):  # a vanished sub-folder has nothing left to sync
                fsync_dir(directory)


def drop_file(directory: Path, name: str, data: bytes) -> Path:
    """Put ``data`` into ``directory`` as ``name`` (or a free variant) the way a careful producer
    does: a hidden temporary file, fsynced, then renamed in; the folder is synced too."""
    directory.mkdir(parents=True, exist_ok=True)
    temp = directory / f".{uuid.uuid4().hex}.tmp"
    write_atomic(temp, data)
    target = free_name(directory, name)
    os.rename(temp, target)
    fsync_dir(directory)
    return target


def move_back(failed: Path, inbox: Path, names: Sequence[str]) -> tuple[list[Path], list[str]]:
    """Move files of ``failed/`` (``names``, relative to it; none: all) back into the inbox,
    dropping their ``.error.json``; returns where they went, and the names that were not there."""
    if names:
        chosen = [(name, failed / name) for name in names]
    else:
        found = sorted(p for p in failed.rglob("*") if p.is_file() and not p.name.endswith(ERROR_SUFFIX))
        chosen = [(str(p.relative_to(failed)), p) for p in found]
    moved, missing = [], []
    for name, path in chosen:
        if not path.is_file() or path.name.endswith(ERROR_SUFFIX):
            missing.append(name)
            continue
        rel = path.relative_to(failed)
        (inbox / rel.parent).mkdir(parents=True, exist_ok=True)
        target = free_name(inbox / rel.parent, rel.name)
        os.rename(path, target)
        _error_file(path).unlink(missing_ok=True)
        moved.append(target)
    return moved, missing


def count_files(root: Path) -> int:
    """Files below ``root``, not counting ``.error.json`` records or hidden temporary files."""
    total = 0
    for _dirpath, _dirs, files in os.walk(root):
        total += sum(1 for name in files if not name.endswith(ERROR_SUFFIX) and not name.startswith("."))
    return total


def prune(root: Path, days: float, now: float | None = None) -> int:
    """Delete files below ``root`` sent more than ``days`` ago; return how many.

    A rename into ``sent/`` updates the inode change time, so ``ctime`` is when
    the file was sent (``mtime`` is when its producer wrote it).
    """
    limit = (time.time() if now is None else now) - days * 86400
    removed = 0
    for directory, _dirs, files in os.walk(root):
        for name in files:
            path = Path(directory, name)
            with contextlib.suppress(OSError):
                info = path.lstat()
                if max(info.st_mtime, info.st_ctime) < limit:
                    path.unlink()
                    removed += 1
    return removed


def _line_record(line: LineError) -> dict[str, Any]:
    """One line of an ``.error.json``: a link's query (API keys, passkeys) shown as ``?…``.

    The failed file itself keeps the link whole, for ``magnetd retry``.
    """
    record = {k: v for k, v in asdict(line).items() if k != "text" or v}
    if "text" in record:
        record["text"] = shown_text(record["text"])
    return record


def error_record(
    reason: str,
    detail: str,
    instance: str | None = None,
    lines: Iterable[LineError] = (),
) -> dict[str, Any]:
    """The ``.error.json`` content: machine-readable reason, human detail, per-line reasons."""
    return {
        "reason": reason,
        "detail": detail,
        "failed_at": now_iso(),
        "instance": instance,
        "lines": [_line_record(line) for line in lines],
    }
