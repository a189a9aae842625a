"""Watch the inbox: a watchdog observer that only queues paths, plus full scans.

The observer thread never touches files: its handler pushes ``Seen`` records
into a queue the supervisor drains. A handler error cannot kill the observer,
and the supervisor checks :meth:`Watcher.alive` and rebuilds it when needed.
Lost events (inotify overflow, network shares) are covered by periodic scans.
"""

from __future__ import annotations

import os
import queue
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

KINDS = (".magnet", ".url", ".json", ".torrent")
TEMP_SUFFIXES = (".tmp", ".part", ".crdownload", ".!qb", "~")
NETWORK_FS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "fuse.sshfs", "afs", "ceph", "glusterfs")


@dataclass(frozen=True)
class Seen:
    """A path the watcher noticed; ``how`` is "moved", "created", "closed", "modified" or "scan"."""

    path: Path
    how: str


def is_candidate(name: str) -> bool:
    """Whether a file name is one magnetd handles now (not hidden, not temporary, known kind)."""
    lower = name.lower()
    if name.startswith(".") or lower.endswith(TEMP_SUFFIXES):
        return False
    return lower.endswith(KINDS)


def in_hidden_dir(path: Path, root: Path) -> bool:
    """True for paths under a hidden sub-folder of ``root`` (e.g. ``.staging/``)."""
    try:
        parts = path.relative_to(root).parts[:-1]
    except ValueError:
        return True
    return any(part.startswith(".") for part in parts)


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


def use_polling(setting: str, path: Path) -> bool:
    """Resolve ``watch.polling``: ``auto`` polls on network file systems."""
    if setting in ("true", "True"):
        return True
    if setting in ("false", "False"):
        return False
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


class _Handler(FileSystemEventHandler):
    """Turns watchdog events into ``Seen`` records; never raises into the observer."""

    def __init__(self, out: queue.SimpleQueue[Any]) -> None:
        self.out = out

    def on_any_event(self, event: FileSystemEvent) -> None:
        try:
            self._queue(event)
        except Exception:
            self.out.put(Seen(Path(), "error"))

    def _queue(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            if event.event_type in ("created", "moved"):
                target = getattr(event, "dest_path", "") or event.src_path
                self.out.put(Seen(Path(os.fsdecode(target)), "dir"))
            return
        if isinstance(event, FileMovedEvent):
            self.out.put(Seen(Path(os.fsdecode(event.dest_path)), "moved"))
        elif isinstance(event, FileClosedEvent):
            self.out.put(Seen(Path(os.fsdecode(event.src_path)), "closed"))
        elif isinstance(event, FileCreatedEvent):
            self.out.put(Seen(Path(os.fsdecode(event.src_path)), "created"))
        elif isinstance(event, FileModifiedEvent):
            self.out.put(Seen(Path(os.fsdecode(event.src_path)), "modified"))


def _observer(polling: bool) -> Any:
    """The observer: polling, inotify asking only for arrivals (Linux), or the platform's own."""
    if polling:
        return PollingObserver(timeout=1.0)
    if sys.platform.startswith("linux"):
        return BaseObserver(_arrivals_emitter(), timeout=1.0)
    return Observer()


def _arrivals_emitter() -> Any:
    """An inotify emitter that never asks for IN_MOVED_FROM.

    Every file magnetd moves out of the inbox would raise one. watchdog holds
    each unpaired one for half a second and pairs them by a linear scan, which
    turns a 10,000-file drain quadratic. The "full events" emitter reports an
    unpaired IN_MOVED_TO as a move (not a creation), so a file renamed in is
    still known to be complete and is read at once.
    """
    from watchdog.observers.inotify import InotifyFullEmitter
    from watchdog.observers.inotify_c import InotifyConstants as C

    class ArrivalsEmitter(InotifyFullEmitter):  # type: ignore[misc]
        def get_event_mask_from_filter(self) -> Any:
            return C.IN_MOVED_TO | C.IN_CREATE | C.IN_CLOSE_WRITE | C.IN_DELETE_SELF

    return ArrivalsEmitter


class Watcher:
    """Owns the watchdog observer for one inbox."""

    def __init__(self, inbox: Path, out: queue.SimpleQueue[Any], polling: str = "auto") -> None:
        self.inbox = inbox
        self.out = out
        self.polling_setting = polling
        self.polling = False
        self._observer: Any = None

    def start(self) -> None:
        """Start (or restart) watching; raises OSError when the inbox cannot be watched."""
        self.stop()
        self.inbox.mkdir(parents=True, exist_ok=True)
        self.polling = use_polling(self.polling_setting, self.inbox)
        observer = _observer(self.polling)
        observer.schedule(_Handler(self.out), os.fspath(self.inbox), recursive=True)
        observer.daemon = True
        observer.start()
        self._observer = observer

    def alive(self) -> bool:
        """True while the observer thread runs and the inbox still exists."""
        return bool(self._observer and self._observer.is_alive() and self.inbox.is_dir())

    def stop(self) -> None:
        observer, self._observer = self._observer, None
        if observer is not None:
            try:
                observer.stop()
                observer.join(timeout=5)
            except Exception:
                pass
