"""Linux inotify through ``inotify_simple``: one thread, whole buffers of events per read.

watchdog's inotify observer hands every event through three threads and a
delayed queue searched linearly for move partners; with thousands of files
renamed in at once that costs more CPU than reading and sending them. magnetd
needs much less: arrivals only (``IN_MOVED_TO``, ``IN_CREATE``,
``IN_CLOSE_WRITE``), every non-hidden sub-folder watched, and a rescan when
the kernel's queue overflows. ``inotify_simple`` does the system calls and
parses ``struct inotify_event`` (each read takes every event queued); this
module keeps the watches, a wake pipe to stop the thread, and the meaning of
the events. Other platforms, and polling, keep watchdog.
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import select
import threading
from pathlib import Path
from typing import Any

from inotify_simple import INotify, flags

from magnetd import logs
from magnetd.model import Arrival, Seen

ARRIVALS = flags.MOVED_TO | flags.CREATE | flags.CLOSE_WRITE
MASK = int(ARRIVALS | flags.DELETE_SELF | flags.MOVE_SELF | flags.ONLYDIR | flags.DONT_FOLLOW)
ROOT_MASK = MASK & ~flags.DONT_FOLLOW  # the inbox itself may be a symbolic link to a folder

log = logs.get(__name__)

BURST_PAUSE_MS = 2
"""After handing events over, the reader waits this long before it reads again (unless it
is stopped): a burst of arrivals (a backlog renamed in) then comes over in batches of
hundreds instead of a wake-up per file, for both this thread and the owner. A lone drop
is handed over at once; a second drop within the pause waits for its end."""

# Plain ints for the per-event tests (an IntEnum member costs a lookup each time).
_OVERFLOW = int(flags.Q_OVERFLOW)
_GONE = int(flags.IGNORED | flags.DELETE_SELF | flags.MOVE_SELF)
_IGNORED = int(flags.IGNORED)
_ISDIR = int(flags.ISDIR)
_NEW_DIR = int(flags.CREATE | flags.MOVED_TO)
_MOVED_TO = int(flags.MOVED_TO)
_CLOSE_WRITE = int(flags.CLOSE_WRITE)
_CREATE = int(flags.CREATE)


class InotifyReader:
    """Watches ``root`` and its non-hidden sub-folders; puts ``Seen`` records into ``out``.

    Its thread ends when ``root`` itself is deleted or moved away, or on a read
    error; :meth:`alive` then says False and the owner builds a new one.
    """

    def __init__(self, root: Path, out: queue.SimpleQueue[Any]) -> None:
        self.root = root
        self.out = out
        self._top = os.fspath(root)
        self._inotify: INotify | None = None
        self._wake_r, self._wake_w = -1, -1
        self._prefixes: dict[int, str] = {}  # wd -> folder path ending in os.sep: one concatenation per event
        self._inodes: dict[int, tuple[int, int]] = {}  # wd -> (st_dev, st_ino) when watched
        self._root_wd = -1
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Watch every folder now below ``root``, then read on a daemon thread; OSError if impossible."""
        self._inotify = INotify()  # close-on-exec
        try:
            self._wake_r, self._wake_w = os.pipe()
            self._root_wd = self._watch_tree(self._top, strict=True)
        except OSError:
            self._close()
            raise
        self._thread = threading.Thread(
            target=self._run, args=(self._inotify,), name="magnetd-inotify", daemon=True
        )
        self._thread.start()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """Stop the thread and release the inotify descriptor."""
        thread, self._thread = self._thread, None
        if thread is not None and thread.is_alive():
            os.write(self._wake_w, b"x")
            thread.join(timeout=5)
            if thread.is_alive():
                return  # still busy (a huge folder tree): it stops at its next look; leave its descriptors
        self._close()

    # -- the reading thread ----------------------------------------------------------------

    def _run(self, inotify: INotify) -> None:
        try:
            poller = select.poll()
            poller.register(inotify.fileno(), select.POLLIN)
            poller.register(self._wake_r, select.POLLIN)
            waker = select.poll()
            waker.register(self._wake_r, select.POLLIN)
            while True:
                ready = {fd for fd, _ in poller.poll()}
                if self._wake_r in ready:
                    return
                try:
                    events = inotify.read(timeout=0)  # everything queued now, parsed
                except InterruptedError:
                    continue
                if not self.handle(events):
                    return
                if events and waker.poll(BURST_PAUSE_MS):
                    return  # woken to stop during the pause
        except Exception as exc:
            log.exception("watcher_error", inbox=str(self.root), error=repr(exc), action="rescanning")
            self.out.put(Seen(self.root, Arrival.ERROR))  # the owner rescans and restarts us

    def handle(self, events: list[Any]) -> bool:
        """Queue what ``events`` (``inotify_simple.Event`` tuples) say; False once the root folder is gone.

        Called on the reading thread; public so that tests can hand it events the
        kernel does not make on demand (a queue overflow).
        """
        put = self.out.put
        for wd, mask, _cookie, name in events:
            if mask & _OVERFLOW:  # events were lost: watch folders made meanwhile, the owner rescans
                self._watch_tree(self._top, strict=False)
                put(Seen(self.root, Arrival.ERROR))
                continue
            if mask & _GONE:
                if wd == self._root_wd:
                    return False
                self._forget_if_moved(wd, mask)
                continue
            prefix = self._prefixes.get(wd)
            if prefix is None or not name:
                continue
            if mask & _ISDIR:
                if mask & _NEW_DIR and not name.startswith("."):
                    path = prefix + name
                    self._watch_tree(path, strict=False)
                    put(Seen(Path(path), Arrival.DIR))  # files already inside have no events
            elif mask & _MOVED_TO:
                put(Seen(prefix + name, Arrival.MOVED))
            elif mask & _CLOSE_WRITE:
                put(Seen(prefix + name, Arrival.CLOSED))
            elif mask & _CREATE:
                put(Seen(prefix + name, Arrival.CREATED))
        return True

    # -- watches ---------------------------------------------------------------------------

    def _watch_tree(self, top: str, strict: bool) -> int:
        """Watch ``top`` and every non-hidden folder below it; returns ``top``'s watch.

        The inbox itself may be a symbolic link to a folder; links found below it are
        not followed. ``strict``: raise if ``top`` cannot be watched.
        """
        wd = self._watch(top, strict, ROOT_MASK if top == self._top else MASK)
        for directory, subdirs, _files in os.walk(top):
            subdirs[:] = [d for d in subdirs if not d.startswith(".")]
            for sub in subdirs:
                self._watch(os.path.join(directory, sub), False, MASK)
        return wd

    def _watch(self, path: str, strict: bool, mask: int) -> int:
        try:
            wd: int = self._notifier().add_watch(path, mask)
        except OSError as exc:
            if strict:
                raise OSError(exc.errno, f"inotify_add_watch: {exc.strerror}", path) from None
            return -1  # vanished or unreadable meanwhile: the periodic scan still covers it
        # the same folder watched again (moved, then seen) keeps its wd; os.path.join's prefix
        self._prefixes[wd] = path if path.endswith(os.sep) else path + os.sep
        try:
            info = os.stat(path)  # what the watch is on (the folder, also for a linked inbox)
            self._inodes[wd] = (info.st_dev, info.st_ino)
        except OSError:
            self._inodes.pop(wd, None)
        return wd

    def _forget_if_moved(self, wd: int, mask: int) -> None:
        """A watched folder was deleted or moved: drop its watch unless it was re-seen in the inbox."""
        if mask & _IGNORED:
            self._prefixes.pop(wd, None)
            self._inodes.pop(wd, None)
            return
        below = self._prefixes.get(wd)
        try:
            info = os.stat(below) if below is not None else None
        except OSError:
            info = None
        if below is None or (info is not None and (info.st_dev, info.st_ino) == self._inodes.get(wd)):
            return  # moved within the inbox: already watched under its new name
        # moved out: forget it and the folders under it (IN_IGNORED follows)
        for other in [w for w, prefix in self._prefixes.items() if prefix.startswith(below)]:
            with contextlib.suppress(OSError):  # already gone
                self._notifier().rm_watch(other)

    def _notifier(self) -> INotify:
        if self._inotify is None:
            raise OSError(errno.EBADF, "inotify: not started")
        return self._inotify

    def _close(self) -> None:
        inotify, self._inotify = self._inotify, None
        if inotify is not None:
            with contextlib.suppress(OSError):
                inotify.close()
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._wake_r = self._wake_w = -1
        self._prefixes.clear()
        self._inodes.clear()
