"""Notice, cheaply, that files changed: compare each one's ``stat`` with what it was when read.

No thread and no notification API: the supervisor asks at most once per loop
tick, and only while an instance waits for a new password (``AUTH_FAILED``).
A stamp is (modification time in ns, size, inode, device), so an editor that
saves in place and one that renames a new file over the old are both seen.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from magnetd.config import Config, Instance

Stamp = tuple[int, int, int, int] | None
"""``(st_mtime_ns, st_size, st_ino, st_dev)``, or None while the file cannot be seen."""


def stamp(path: Path) -> Stamp:
    """What ``path`` looks like now."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return (info.st_mtime_ns, info.st_size, info.st_ino, info.st_dev)


class FileStamps:
    """The stamps of a set of files, taken when they were last read."""

    def __init__(self, stamps: Mapping[Path, Stamp]) -> None:
        self._stamps = dict(stamps)

    @classmethod
    def of(cls, paths: Iterable[Path], known: FileStamps | None = None) -> FileStamps:
        """Stamps of ``paths``: from ``known`` where it has them, else taken now."""
        old = known._stamps if known is not None else {}
        return cls({path: old[path] if path in old else stamp(path) for path in paths})

    @property
    def paths(self) -> list[Path]:
        return list(self._stamps)

    def changed(self, paths: Iterable[Path]) -> list[Path]:
        """Those of ``paths`` (known ones only) that differ from their stamp."""
        return [p for p in paths if p in self._stamps and stamp(p) != self._stamps[p]]


def config_files(config: Config) -> list[Path]:
    """The files a config was read from: itself and its instances' password files."""
    return [config.path, *(i.password_file for i in config.instances if i.password_file is not None)]


class ConfigWatch:
    """Which of the running config's files changed since they were read.

    :meth:`changed` looks (a ``stat`` per file) only while some instance waits for
    a new password, and at most every ``every`` seconds. Stamps are taken before
    a reload reads the files, and kept even when the new config is refused, so
    that the next save is noticed again.
    """

    def __init__(self, config: Config, every: float = 1.0) -> None:
        self.every = every
        self.next_check = 0.0
        self._stamps = FileStamps.of(config_files(config))
        self._reading = self._stamps

    def changed(self, config: Config, waiting: Sequence[Instance], now: float) -> list[str]:
        """The config file, or a password file of an instance in ``waiting``, if changed."""
        if now < self.next_check:
            return []
        self.next_check = now + self.every
        if not waiting:
            return []
        watched = [config.path, *(i.password_file for i in waiting if i.password_file is not None)]
        return [str(path) for path in self._stamps.changed(watched)]

    def reading(self) -> None:
        """A reload is about to read the files."""
        self._reading = FileStamps.of(self._stamps.paths)

    def read(self, config: Config | None) -> None:
        """The reload is done: ``config`` is the new one, or None if it was refused."""
        if config is None:
            self._stamps = self._reading
        else:
            self._stamps = FileStamps.of(config_files(config), known=self._reading)
