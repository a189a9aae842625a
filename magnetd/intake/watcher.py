"""Watch the inbox: a thread that only queues paths, plus full scans.

On Linux that thread reads inotify itself (:mod:`magnetd.intake.inotify`); elsewhere,
and when polling, it is a watchdog observer (:mod:`magnetd.intake.observer`, imported
only then). Neither touches files: each
pushes ``Seen`` records into a queue the supervisor drains. A handler error
cannot kill the observer, and the supervisor checks :meth:`Watcher.alive` and
rebuilds it when needed.
Lost events (inotify overflow, network shares) are covered by periodic scans.
"""

from __future__ import annotations

import os
import queue
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magnetd import logs
from magnetd.config import Polling
from magnetd.model import FileKind

if sys.platform.startswith("linux") or TYPE_CHECKING:  # inotify_simple is a dependency on Linux only
    from magnetd.intake.inotify import InotifyReader

KINDS = tuple(kind.suffix for kind in FileKind)
TEMP_SUFFIXES = (".tmp", ".part", ".crdownload", ".!qb", "~")
NETWORK_FS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "fuse.sshfs", "afs", "ceph", "glusterfs")


log = logs.get(__name__)


def is_candidate(name: str) -> bool:
    """Whether a file name is one magnetd handles now (not hidden, not temporary, known kind)."""
    lower = name.lower()
    if name.startswith(".") or lower.endswith(TEMP_SUFFIXES):
        return False
    return lower.endswith(KINDS)


def in_hidden_dir(path: Path | str, root: Path) -> bool:
    """True for paths under a hidden sub-folder of ``root`` (e.g. ``.staging/``), or not under it.

    Runs for every event, so it works on the strings (no ``relative_to``).
    """
    text, base = os.fspath(path), os.fspath(root).rstrip(os.sep) + os.sep
    if not text.startswith(base):
        return True
    folders = text[len(base) :].rpartition(os.sep)[0]  # "" for a file directly in root
    return folders.startswith(".") or os.sep + "." in folders


def scan(root: Path) -> Iterator[Path]:
    """Every candidate file below ``root``, without following symlinked folders."""
    stack = [root]
    while stack:
        directory = stack.pop()
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        if not entry.name.startswith("."):
                            stack.append(Path(entry.path))
                    elif is_candidate(entry.name):
                        yield Path(entry.path)
        except OSError:
            continue  # vanished or unreadable folder: the next scan tries again


def use_polling(setting: Polling, path: Path) -> bool:
    """Resolve ``watch.polling``: ``auto`` polls on network file systems."""
    if setting != Polling.AUTO:
        return setting == Polling.ALWAYS
    return filesystem_type(path) in NETWORK_FS


def filesystem_type(path: Path) -> str:
    """The mount's file-system type for ``path`` on Linux ("" elsewhere or unknown)."""
    if not sys.platform.startswith("linux"):
        return ""
    best, fstype = "", ""
    target = str(path.resolve())
    try:
        with open("/proc/self/mounts", encoding="utf-8") as mounts:
            for line in mounts:
                fields = line.split()
                if len(fields) > 2:
                    mount = fields[1].replace("\\040", " ")
                    inside = target == mount or target.startswith(mount.rstrip("/") + "/")
                    if inside and len(mount) >= len(best):
                        best, fstype = mount, fields[2]
    except OSError:
        return ""
    return fstype


class Watcher:
    """Owns the watchdog observer for one inbox."""

    def __init__(self, inbox: Path, out: queue.SimpleQueue[Any], polling: Polling = Polling.AUTO) -> None:
        self.inbox = inbox
        self.out = out
        self.polling_setting = polling
        self.polling = False
        self._observer: Any = None
        self._reader: InotifyReader | None = None

    def start(self) -> None:
        """Start (or restart) watching; raises OSError when the inbox cannot be watched."""
        self.stop()
        self.inbox.mkdir(parents=True, exist_ok=True)
        self.polling = use_polling(self.polling_setting, self.inbox)
        if not self.polling and sys.platform.startswith("linux"):
            reader = InotifyReader(self.inbox, self.out)
            reader.start()
            self._reader = reader
            return
        from magnetd.intake import observer as watchdog_observer  # watchdog: ~5 MB, only when used

        observer = watchdog_observer.make(self.polling)
        observer.schedule(watchdog_observer.Handler(self.out), os.fspath(self.inbox), recursive=True)
        observer.daemon = True
        observer.start()
        self._observer = observer

    def alive(self) -> bool:
        """True while the observer thread runs and the inbox still exists."""
        running = self._reader.alive() if self._reader else bool(self._observer and self._observer.is_alive())
        return running and self.inbox.is_dir()

    def stop(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.stop()
        observer, self._observer = self._observer, None
        if observer is not None:
            try:
                observer.stop()
                observer.join(timeout=5)
            except Exception as exc:
                log.exception("watcher_error", inbox=str(self.inbox), error=repr(exc), action="stopping")
