"""The inbox watched through watchdog: polling, and platforms other than Linux.

Imported only when used (about 5 MB of memory that the inotify reader does without).
"""

from __future__ import annotations

import os
import queue
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
from watchdog.observers.polling import PollingObserver

from magnetd import logs
from magnetd.model import Arrival, Seen

log = logs.get(__name__)


class Handler(FileSystemEventHandler):
    """Turns watchdog events into ``Seen`` records; never raises into the observer."""

    def __init__(self, out: queue.SimpleQueue[Any]) -> None:
        self.out = out

    def on_any_event(self, event: FileSystemEvent) -> None:
        try:
            self._queue(event)
        except Exception as exc:
            log.exception(
                "watcher_error", path=os.fsdecode(event.src_path), error=repr(exc), action="rescanning"
            )
            self.out.put(Seen(Path(), Arrival.ERROR))

    def _queue(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            if event.event_type in ("created", "moved"):
                target = getattr(event, "dest_path", "") or event.src_path
                self.out.put(Seen(Path(os.fsdecode(target)), Arrival.DIR))
            return
        if isinstance(event, FileMovedEvent):
            self.out.put(Seen(Path(os.fsdecode(event.dest_path)), Arrival.MOVED))
        elif isinstance(event, FileClosedEvent):
            self.out.put(Seen(Path(os.fsdecode(event.src_path)), Arrival.CLOSED))
        elif isinstance(event, FileCreatedEvent):
            self.out.put(Seen(Path(os.fsdecode(event.src_path)), Arrival.CREATED))
        elif isinstance(event, FileModifiedEvent):
            self.out.put(Seen(Path(os.fsdecode(event.src_path)), Arrival.MODIFIED))


def make(polling: bool) -> Any:
    """watchdog's observer: polling, or the platform's own (not used for inotify on Linux)."""
    if polling:
        return PollingObserver(timeout=1.0)
    return Observer()
