"""Inbox readiness: renamed-in files at once, writers waited for, symlinks refused, oldest first."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from magnetd.intake.inbox import Busy, Inbox, Waiting, identity, read, unchanged
from magnetd.intake.watcher import in_hidden_dir, is_candidate, scan
from magnetd.model import Arrival, Rejected, Seen


def test_candidates_skip_hidden_temporary_and_unknown_names() -> None:
    assert is_candidate("a.MAGNET") and is_candidate("b.url") and is_candidate("c.json")
    for name in (
        ".a.magnet",
        "a.magnet.part",
        "a.torrent.crdownload",
        "a.magnet.tmp",
        "a.!qB",
        "x~",
        "a.txt",
    ):
        assert not is_candidate(name), name


def test_hidden_folders_and_paths_outside_the_inbox_are_left_alone(tmp_path: Path) -> None:
    root = tmp_path / "inbox"
    assert not in_hidden_dir(root / "a.magnet", root)
    assert not in_hidden_dir(root / "books" / "sci-fi" / "a.magnet", root)
    assert not in_hidden_dir(root / "books" / ".a.magnet", root)  # a hidden *file* is is_candidate's job
    assert in_hidden_dir(root / ".staging" / "a.magnet", root)
    assert in_hidden_dir(root / "books" / ".part" / "a.magnet", root)
    assert in_hidden_dir(tmp_path / "inbox2" / "a.magnet", root)  # a sibling that shares the prefix
    assert in_hidden_dir(tmp_path / "a.magnet", root)


@given(st.lists(st.sampled_from(["a", ".a", "a.b", "..", "b.", "ab", ".b.c"]), min_size=1, max_size=5))
def test_a_path_is_in_a_hidden_folder_when_one_of_its_folders_starts_with_a_dot(parts: list[str]) -> None:
    root = Path("/srv/inbox")
    hidden = any(part.startswith(".") for part in parts[:-1])  # the last part is the file
    assert in_hidden_dir(root.joinpath(*parts), root) == hidden
    assert in_hidden_dir(os.path.join(str(root), *parts), root) == hidden


def test_scan_finds_files_in_sub_folders_but_not_hidden_ones(tmp_path: Path) -> None:
    (tmp_path / "books").mkdir()
    (tmp_path / ".staging").mkdir()
    for path in ("a.magnet", "books/b.url", ".staging/c.magnet", "d.part"):
        (tmp_path / path).write_text("x")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in scan(tmp_path)) == ["a.magnet", "books/b.url"]


def test_oldest_first_by_write_time_for_scanned_files(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path)
    new, old = tmp_path / "new.magnet", tmp_path / "old.magnet"
    new.write_text("x")
    old.write_text("x")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    inbox.note(Seen(new, Arrival.SCAN))
    inbox.note(Seen(old, Arrival.SCAN))
    assert [w.path for w in inbox.due()] == [old, new]


def test_a_file_still_open_for_writing_is_busy_until_closed(tmp_path: Path) -> None:
    path = tmp_path / "slow.magnet"
    inbox = Inbox(tmp_path)
    with open(path, "w") as writer:
        writer.write("a" * 40 + "\n")
        writer.flush()
        inbox.note(Seen(path, Arrival.CREATED))
        waiting = inbox.due()[0]
        with pytest.raises(Busy):
            read(waiting, 1 << 20, settle=0.0)
    assert read(waiting, 1 << 20, settle=0.0) == b"a" * 40 + b"\n"


def test_symlinks_and_large_files_are_refused_unread(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path)
    os.symlink("/etc/passwd", tmp_path / "link.magnet")
    (tmp_path / "big.magnet").write_bytes(b"a" * 2000)
    inbox.note(Seen(tmp_path / "link.magnet", Arrival.MOVED))
    inbox.note(Seen(tmp_path / "big.magnet", Arrival.MOVED))
    reasons = []
    for waiting in inbox.due():
        with pytest.raises(Rejected) as caught:
            read(waiting, 1000, settle=0.0)
        reasons.append(caught.value.reason)
    assert sorted(reasons) == ["symlink", "too_large"]


def test_empty_files_get_a_grace_period(tmp_path: Path) -> None:
    path = tmp_path / "placeholder.magnet"
    path.write_bytes(b"")
    inbox = Inbox(tmp_path)
    inbox.note(Seen(path, Arrival.MOVED))
    waiting = inbox.due()[0]
    with pytest.raises(Busy):
        read(waiting, 1000, settle=0.0)
    os.utime(path, (time.time() - 60, time.time() - 60))
    assert read(waiting, 1000, settle=0.0) == b""


def _read_waiting(path: Path) -> Waiting:
    waiting = Waiting(str(path), 0.0, 0.0, Arrival.MOVED)
    read(waiting, 1 << 20, 0.0)
    return waiting


def test_a_file_read_is_unchanged_until_rewritten_replaced_or_touched(tmp_path: Path) -> None:
    path = tmp_path / "a.magnet"
    path.write_text("magnet:?xt=urn:btih:" + "a" * 40)
    waiting = _read_waiting(path)
    assert unchanged(waiting)
    path.write_text("magnet:?xt=urn:btih:" + "b" * 41)  # rewritten: another size
    assert not unchanged(waiting)
    waiting = _read_waiting(path)
    other = tmp_path / "other"
    other.write_bytes(path.read_bytes())
    os.replace(other, path)  # replaced: the same bytes in another inode
    assert not unchanged(waiting)
    waiting = _read_waiting(path)
    info = path.stat()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 1))  # written again, same size
    assert not unchanged(waiting)


def test_identity_tells_files_apart_even_past_64_bits() -> None:
    def stat_of(ino: int, mtime_ns: int) -> os.stat_result:
        return os.stat_result((0o100644, ino, 2049, 1, 0, 0, 10, 0, 0, 0, 0.0, 0.0, 0.0, 0, mtime_ns, 0))

    huge = 1 << 100  # 128-bit file ids exist (ReFS)
    assert identity(stat_of(huge, 5)) == identity(stat_of(huge, 5))
    assert identity(stat_of(huge, 5)) != identity(stat_of(huge + 1, 5))
    assert identity(stat_of(7, 5)) != identity(stat_of(7, 6))
    assert len(identity(stat_of(7, 5))) == 32


def test_reading_takes_one_read_at_the_stat_size_and_reads_on_when_it_differs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.magnet"
    text = b"magnet:?xt=urn:btih:" + b"a" * 40
    path.write_bytes(text)
    real_read, asked = os.read, []

    def counted(fd: int, n: int) -> bytes:
        asked.append(n)
        return real_read(fd, n)

    monkeypatch.setattr(os, "read", counted)
    assert _read_waiting(path).identity is not None
    assert asked == [len(text) + 1]  # exactly the size came back: that is the end
    asked.clear()

    def short(fd: int, n: int) -> bytes:  # a read that gives less than there is
        asked.append(n)
        return real_read(fd, min(n, 7))

    monkeypatch.setattr(os, "read", short)
    assert read(Waiting(str(path), 0.0, 0.0, Arrival.MOVED), 1 << 20, 0.0) == text
    assert len(asked) > 2


def test_files_noted_within_a_millisecond_share_their_times_and_keep_their_order(tmp_path: Path) -> None:
    from tests.fakes import FakeClock

    clock = FakeClock()
    inbox = Inbox(tmp_path, clock=clock)
    noted = []
    for name in ("c.magnet", "a.magnet", "b.magnet"):
        noted.append(inbox.note(Seen(tmp_path / name, Arrival.MOVED)))
        clock.advance(0.0002)
    clock.advance(0.01)
    later = inbox.note(Seen(tmp_path / "0.magnet", Arrival.MOVED))
    assert all(w is not None for w in [*noted, later])
    first, second, third = noted
    assert first and second and third and later
    assert first.first_seen is second.first_seen is third.first_seen  # one float for the three
    assert later.first_seen > first.first_seen
    assert [w.path.name for w in inbox.due()] == ["c.magnet", "a.magnet", "b.magnet", "0.magnet"]


def test_a_waiting_file_costs_a_few_hundred_bytes(tmp_path: Path) -> None:
    import tracemalloc

    from tests.fakes import FakeClock

    inbox = Inbox(tmp_path, clock=FakeClock())
    seen = [Seen(tmp_path / f"drop-{n:06d}.magnet", Arrival.MOVED) for n in range(2000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for one in seen:
            inbox.note(one)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(inbox) == 2000
    assert grown / 2000 < 350  # its record, its path as text and its slot in the inbox; a Path took ~220 more
