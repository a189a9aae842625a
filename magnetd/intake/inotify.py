"""Linux inotify, read directly: one thread, whole buffers of events per read.

watchdog's inotify observer hands every event through three threads and a
delayed queue searched linearly for move partners; with thousands of files
renamed in at once that costs more CPU than reading and sending them. magnetd
needs much less: arrivals only (``IN_MOVED_TO``, ``IN_CREATE``,
``IN_CLOSE_WRITE``), every non-hidden sub-folder watched, and a rescan when
the kernel's queue overflows. Other platforms, and polling, keep watchdog.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import queue
import select
import struct
import threading
from pathlib import Path
from typing import Any

from magnetd import logs
from magnetd.model import Arrival, Seen

IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_ISDIR = 0x40000000
IN_CLOEXEC = 0o2000000

MASK = IN_MOVED_TO | IN_CREATE | IN_CLOSE_WRITE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW
HEADER = struct.Struct("iIII")  # wd, mask, cookie, len (struct inotify_event)
BUFFER = 256 * 1024


log = logs.get(__name__)


def parse(buffer: bytes) -> list[tuple[int, int, bytes]]:
    """``(wd, mask, name)`` for each ``struct inotify_event`` in ``buffer``."""
    events = []
    offset, end = 0, len(buffer)
    while offset + HEADER.size <= end:
        wd, mask, _cookie, length = HEADER.unpack_from(buffer, offset)
        offset += HEADER.size
        name = buffer[offset : offset + length].rstrip(b"\0")
        offset += length
        events.append((wd, mask, name))
    return events


def _libc() -> Any:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    libc.inotify_init1.argtypes = [ctypes.c_int]
    libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
    return libc


class InotifyReader:
    """Watches ``root`` and its non-hidden sub-folders; puts ``Seen`` records into ``out``.

    Its thread ends when ``root`` itself is deleted or moved away, or on a read
    error; :meth:`alive` then says False and the owner builds a new one.
    """

    def __init__(self, root: Path, out: queue.SimpleQueue[Any]) -> None:
        self.root = root
        self.out = out
        self._libc = _libc()
        self._fd = -1
        self._wake_r, self._wake_w = -1, -1
        self._dirs: dict[int, bytes] = {}  # wd -> folder path
        self._inodes: dict[int, tuple[int, int]] = {}  # wd -> (st_dev, st_ino) when watched
        self._root_wd = -1
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Watch every folder now below ``root``, then read on a daemon thread; OSError if impossible."""
        fd = self._libc.inotify_init1(IN_CLOEXEC)
        if fd < 0:
            raise _os_error("inotify_init1")
        self._fd = fd
        try:
            self._wake_r, self._wake_w = os.pipe()
            self._root_wd = self._watch_tree(os.fsencode(self.root), strict=True)
        except OSError:
            self._close()
            raise
        self._thread = threading.Thread(target=self._run, name="magnetd-inotify", daemon=True)
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

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        try:
            while True:
                ready = {fd for fd, _ in poller.poll()}
                if self._wake_r in ready:
                    return
                try:
                    buffer = os.read(self._fd, BUFFER)
                except InterruptedError:
                    continue
                if not self._handle(parse(buffer)):
                    return
        except Exception as exc:
            log.exception("watcher_error", inbox=str(self.root), error=repr(exc), action="rescanning")
            self.out.put(Seen(self.root, Arrival.ERROR))  # the owner rescans and restarts us

    def _handle(self, events: list[tuple[int, int, bytes]]) -> bool:
        """Queue what ``events`` say; False once the root folder is gone."""
        put = self.out.put
        for wd, mask, name in events:
            if mask & IN_Q_OVERFLOW:  # events were lost: watch folders made meanwhile, the owner rescans
                self._watch_tree(os.fsencode(self.root), strict=False)
                put(Seen(self.root, Arrival.ERROR))
                continue
            if mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF):
                if wd == self._root_wd:
                    return False
                self._forget_if_moved(wd, mask)
                continue
            folder = self._dirs.get(wd)
            if folder is None or not name:
                continue
            path = os.path.join(folder, name)
            if mask & IN_ISDIR:
                if mask & (IN_CREATE | IN_MOVED_TO) and not name.startswith(b"."):
                    self._watch_tree(path, strict=False)
                    put(Seen(Path(os.fsdecode(path)), Arrival.DIR))  # files already inside have no events
            elif mask & IN_MOVED_TO:
                put(Seen(Path(os.fsdecode(path)), Arrival.MOVED))
            elif mask & IN_CLOSE_WRITE:
                put(Seen(Path(os.fsdecode(path)), Arrival.CLOSED))
            elif mask & IN_CREATE:
                put(Seen(Path(os.fsdecode(path)), Arrival.CREATED))
        return True

    # -- watches ---------------------------------------------------------------------------

    def _watch_tree(self, top: bytes, strict: bool) -> int:
        """Watch ``top`` and every non-hidden folder below it; returns ``top``'s watch.

        The inbox itself may be a symbolic link to a folder; links found below it are
        not followed. ``strict``: raise if ``top`` cannot be watched.
        """
        is_root = top == os.fsencode(self.root)
        wd = self._watch(top, strict, MASK & ~IN_DONT_FOLLOW if is_root else MASK)
        for directory, subdirs, _files in os.walk(top):
            subdirs[:] = [d for d in subdirs if not d.startswith(b".")]
            for sub in subdirs:
                self._watch(os.path.join(directory, sub), False, MASK)
        return wd

    def _watch(self, path: bytes, strict: bool, mask: int) -> int:
        wd: int = self._libc.inotify_add_watch(self._fd, path, mask)
        if wd < 0:
            if strict:
                raise _os_error("inotify_add_watch", path)
            return -1  # vanished or unreadable meanwhile: the periodic scan still covers it
        self._dirs[wd] = path  # the same folder watched again (moved, then seen) keeps its wd
        try:
            info = os.stat(path)  # what the watch is on (the folder, also for a linked inbox)
            self._inodes[wd] = (info.st_dev, info.st_ino)
        except OSError:
            self._inodes.pop(wd, None)
        return wd

    def _forget_if_moved(self, wd: int, mask: int) -> None:
        """A watched folder was deleted or moved: drop its watch unless it was re-seen in the inbox."""
        if mask & IN_IGNORED:
            self._dirs.pop(wd, None)
            self._inodes.pop(wd, None)
            return
        path = self._dirs.get(wd)
        try:
            info = os.stat(path) if path is not None else None
        except OSError:
            info = None
        if path is None or (info is not None and (info.st_dev, info.st_ino) == self._inodes.get(wd)):
            return  # moved within the inbox: already watched under its new name
        below = path + b"/"  # moved out: forget it and the folders under it (IN_IGNORED follows)
        for other in [w for w, p in self._dirs.items() if w == wd or p.startswith(below)]:
            self._libc.inotify_rm_watch(self._fd, other)

    def _close(self) -> None:
        for fd in (self._fd, self._wake_r, self._wake_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._fd = self._wake_r = self._wake_w = -1
        self._dirs.clear()
        self._inodes.clear()


def _os_error(call: str, path: bytes | None = None) -> OSError:
    code = ctypes.get_errno() or errno.EIO
    return OSError(code, f"{call}: {os.strerror(code)}", os.fsdecode(path) if path is not None else None)
