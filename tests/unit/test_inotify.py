"""The Linux inotify reader, on a real inotify descriptor and real folders."""

from __future__ import annotations

import os
import queue
import struct
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from magnetd.model import Arrival, Seen
from tests.daemon import wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux-only")

if sys.platform.startswith("linux"):
    from inotify_simple import flags, parse_events

    from magnetd.intake.inotify import InotifyReader

Watched = tuple[Path, "queue.SimpleQueue[Any]", "InotifyReader"]


def take(out: queue.SimpleQueue[Any], count: int, timeout: float = 5.0) -> list[Seen]:
    """The next ``count`` records (fails if they do not come), their paths as Paths (a file's
    comes as text)."""
    taken = [out.get(timeout=timeout) for _ in range(count)]
    return [Seen(Path(seen.path), seen.how) for seen in taken]


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[Watched]:
    inbox = tmp_path / "inbox"
    (inbox / "books").mkdir(parents=True)
    (inbox / ".staging").mkdir()
    out: queue.SimpleQueue[Any] = queue.SimpleQueue()
    reader = InotifyReader(inbox, out)
    reader.start()
    yield inbox, out, reader
    reader.stop()


def test_a_queue_overflow_asks_for_a_rescan_and_reading_goes_on(watched: Watched) -> None:
    inbox, out, reader = watched
    overflow = struct.pack("iIII", -1, flags.Q_OVERFLOW, 0, 0)  # as the kernel writes it: no watch, no name
    assert reader.handle(parse_events(overflow))
    assert take(out, 1) == [Seen(inbox, Arrival.ERROR)]
    (inbox / "books" / "after.magnet").write_text("m")
    assert take(out, 2)[1] == Seen(inbox / "books" / "after.magnet", Arrival.CLOSED)


def test_arrivals_are_reported_by_how_they_came(watched: Watched) -> None:
    inbox, out, _reader = watched
    staged = inbox / ".staging" / "x.magnet"
    staged.write_text("m")  # in a hidden folder: nothing is reported
    staged.rename(inbox / "books" / "moved.magnet")
    assert take(out, 1) == [Seen(inbox / "books" / "moved.magnet", Arrival.MOVED)]
    (inbox / "written.magnet").write_text("m")
    assert take(out, 2) == [
        Seen(inbox / "written.magnet", Arrival.CREATED),
        Seen(inbox / "written.magnet", Arrival.CLOSED),
    ]
    time.sleep(0.1)
    assert out.empty()


def test_new_folders_are_reported_and_watched(watched: Watched) -> None:
    inbox, out, _reader = watched
    (inbox / "new").mkdir()
    assert take(out, 1) == [Seen(inbox / "new", Arrival.DIR)]
    os.rename(inbox / "new", inbox / "renamed")  # a move within the inbox keeps its watch
    assert take(out, 1) == [Seen(inbox / "renamed", Arrival.DIR)]
    (inbox / "renamed" / "later.magnet").write_text("m")
    assert take(out, 2)[1] == Seen(inbox / "renamed" / "later.magnet", Arrival.CLOSED)
    (inbox / ".hidden").mkdir()
    (inbox / ".hidden" / "no.magnet").write_text("m")
    (inbox / "renamed" / "after.magnet").write_text("m")
    assert take(out, 1) == [Seen(inbox / "renamed" / "after.magnet", Arrival.CREATED)]  # nothing from .hidden


def test_folders_moved_in_are_reported_and_watched_unless_hidden(watched: Watched, tmp_path: Path) -> None:
    inbox, out, _reader = watched
    (tmp_path / "outside" / "deep").mkdir(parents=True)
    (tmp_path / "outside" / "deep" / "inside.magnet").write_text("m")  # already there: the rescan finds it
    (tmp_path / "hidden-out").mkdir()
    os.rename(tmp_path / "hidden-out", inbox / ".hidden-in")
    os.rename(tmp_path / "outside", inbox / "moved-in")
    assert take(out, 1) == [Seen(inbox / "moved-in", Arrival.DIR)]
    (inbox / ".hidden-in" / "no.magnet").write_text("m")
    (inbox / "moved-in" / "deep" / "later.magnet").write_text("m")
    assert take(out, 2) == [
        Seen(inbox / "moved-in" / "deep" / "later.magnet", Arrival.CREATED),
        Seen(inbox / "moved-in" / "deep" / "later.magnet", Arrival.CLOSED),
    ]


def test_a_folder_moved_out_is_no_longer_watched(watched: Watched, tmp_path: Path) -> None:
    inbox, out, _reader = watched
    os.rename(inbox / "books", tmp_path / "books-out")
    (inbox / "marker.magnet").write_text("m")  # once this is reported, so was the move before it
    assert take(out, 2)[1] == Seen(inbox / "marker.magnet", Arrival.CLOSED)
    (tmp_path / "books-out" / "gone.magnet").write_text("m")
    (inbox / "here.magnet").write_text("m")
    assert take(out, 2) == [
        Seen(inbox / "here.magnet", Arrival.CREATED),
        Seen(inbox / "here.magnet", Arrival.CLOSED),
    ]


def test_the_reader_ends_when_the_inbox_goes_and_stop_is_clean(watched: Watched, tmp_path: Path) -> None:
    inbox, _out, reader = watched
    assert reader.alive()
    os.rename(inbox, tmp_path / "elsewhere")
    wait_for(lambda: not reader.alive(), 5, "the reader to end")
    reader.stop()
    reader.stop()  # twice is harmless


def test_an_inbox_that_is_a_symbolic_link_is_watched(tmp_path: Path) -> None:
    (tmp_path / "real" / "sub").mkdir(parents=True)
    (tmp_path / "inbox").symlink_to(tmp_path / "real")
    (tmp_path / "real" / "sub" / "loop").symlink_to(tmp_path / "real")  # links below it are not followed
    out: queue.SimpleQueue[Any] = queue.SimpleQueue()
    reader = InotifyReader(tmp_path / "inbox", out)
    reader.start()
    try:
        (tmp_path / "real" / "sub" / "a.magnet").write_text("m")
        assert take(out, 2)[1] == Seen(tmp_path / "inbox" / "sub" / "a.magnet", Arrival.CLOSED)
    finally:
        reader.stop()


def test_starting_on_a_missing_folder_raises(tmp_path: Path) -> None:
    reader = InotifyReader(tmp_path / "missing", queue.SimpleQueue())
    with pytest.raises(FileNotFoundError):
        reader.start()


_IMPORTS = """
import queue, sys, time
from pathlib import Path
from magnetd.service.supervisor import Supervisor
from magnetd.health import gates
from magnetd.config import Polling
from magnetd.intake.watcher import Watcher
out = queue.SimpleQueue()
watcher = Watcher(Path(sys.argv[1]), out, Polling(sys.argv[2]))
watcher.start()
(Path(sys.argv[1]) / "a.magnet").write_text("x")
deadline = time.monotonic() + 10
while time.monotonic() < deadline and out.empty():
    time.sleep(0.05)
watcher.stop()
print(not out.empty(), "watchdog" in sys.modules, "psutil" in sys.modules)
"""


@pytest.mark.parametrize(("polling", "watchdog"), [("false", "False"), ("true", "True")])
def test_watchdog_and_psutil_are_loaded_only_when_used(tmp_path: Path, polling: str, watchdog: str) -> None:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", _IMPORTS, str(tmp_path), polling], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", watchdog, "False"]  # a file seen either way


def _counting(reader: InotifyReader) -> list[int]:
    """The number of events of each read the reader hands over, in order."""
    sizes: list[int] = []
    handle = reader.handle

    def counted(events: list[Any]) -> bool:
        sizes.append(len(events))
        return handle(events)

    reader.handle = counted  # type: ignore[method-assign]
    return sizes


def test_a_lone_drop_comes_at_once_and_stop_ends_the_pause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("magnetd.intake.inotify.BURST_PAUSE_MS", 60_000)
    staging, inbox = tmp_path / "staging", tmp_path / "inbox"
    for folder in (staging, inbox):
        folder.mkdir()
    for name in ("first.magnet", "second.magnet"):
        (staging / name).write_text("m")
    out: queue.SimpleQueue[Any] = queue.SimpleQueue()
    reader = InotifyReader(inbox, out)
    reader.start()
    try:  # renamed in: one event each
        os.rename(staging / "first.magnet", inbox / "first.magnet")
        assert take(out, 1) == [Seen(inbox / "first.magnet", Arrival.MOVED)]  # not after the pause
        os.rename(staging / "second.magnet", inbox / "second.magnet")
        with pytest.raises(queue.Empty):  # the reader is in its pause: the second waits for its end
            out.get(timeout=0.2)
    finally:
        reader.stop()
    assert not reader.alive()  # stopped inside a minute's pause, not at its end


def test_a_burst_is_handed_over_in_one_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("magnetd.intake.inotify.BURST_PAUSE_MS", 500)
    staging = tmp_path / "staging"
    inbox = tmp_path / "inbox"
    for folder in (staging, inbox):
        folder.mkdir()
    for i in range(50):
        (staging / f"{i}.magnet").write_text("m")
    out: queue.SimpleQueue[Any] = queue.SimpleQueue()
    reader = InotifyReader(inbox, out)
    sizes = _counting(reader)
    reader.start()
    try:
        os.rename(staging / "0.magnet", inbox / "0.magnet")
        take(out, 1)
        for i in range(1, 50):  # all within the pause that follows the first hand-over
            os.rename(staging / f"{i}.magnet", inbox / f"{i}.magnet")
        rest = take(out, 49)
    finally:
        reader.stop()
    assert sizes == [1, 49]
    assert {Path(seen.path).name for seen in rest} == {f"{i}.magnet" for i in range(1, 50)}


def test_a_batch_waits_longer_for_arrivals_than_the_reader_pauses() -> None:
    from magnetd.intake.inotify import BURST_PAUSE_MS
    from magnetd.service.pipeline import COALESCE

    # Otherwise the pass takes every pause of the reader for the end of a drop and sends a
    # batch at each: a burst would go out in batches of what came between two pauses.
    assert COALESCE > 2 * BURST_PAUSE_MS / 1000
