"""Durable moves, collision-safe names, retention, the status snapshot and sd_notify."""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import socket
import sys
import time
from pathlib import Path

import pytest

from magnetd.config import Folders
from magnetd.model import LineError, StatusCode
from magnetd.records import spool as spool_module
from magnetd.records import status
from magnetd.records.spool import Spool, error_record, free_name, prune
from magnetd.service.systemd import Notifier


def folders(tmp_path: Path) -> Folders:
    made = Folders(tmp_path / "in", tmp_path / "sent", tmp_path / "failed", tmp_path / "state")
    for path in made.all():
        path.mkdir()
    return made


def unsupported(source: str, target: str) -> None:
    raise OSError(errno.EINVAL, "Invalid argument", source, None, target)


@pytest.mark.parametrize("way", ["renameat2", "checked", "unsupported"])
def test_moves_never_overwrite(tmp_path: Path, way: str) -> None:
    f = folders(tmp_path)
    if way == "renameat2" and spool_module.rename_noreplace is None:
        pytest.skip("this libc has no renameat2")  # glibc >= 2.28 (Debian 10 and later) has it
    ways = {"renameat2": spool_module.rename_noreplace, "checked": None, "unsupported": unsupported}
    spool = Spool(f, noreplace=ways[way])  # checked: as on other systems; unsupported: a refusing FS
    for content in ("one", "two", "three"):
        (f.inbox / "sub").mkdir(exist_ok=True)
        (f.inbox / "sub" / "x.magnet").write_text(content)
        spool.sent(f.inbox / "sub" / "x.magnet")
    spool.flush()
    names = sorted(p.name for p in (f.sent / "sub").iterdir())
    assert names == ["x.2.magnet", "x.3.magnet", "x.magnet"]
    assert (f.sent / "sub" / "x.magnet").read_text() == "one"
    assert free_name(f.sent / "sub", "x.magnet").name == "x.4.magnet"
    assert spool.noreplace is ways["renameat2" if way == "renameat2" else "checked"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="renameat2 is Linux-only")
def test_renameat2_is_found_on_linux_and_refuses_to_replace(tmp_path: Path) -> None:
    assert spool_module.rename_noreplace is not None
    (tmp_path / "a").write_text("a")
    (tmp_path / "b").write_text("b")
    with pytest.raises(FileExistsError):
        spool_module.rename_noreplace(str(tmp_path / "a"), str(tmp_path / "b"))
    assert (tmp_path / "b").read_text() == "b"
    odd = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"not-utf8-\xff.magnet"))  # a lone surrogate
    spool_module.rename_noreplace(str(tmp_path / "a"), odd)
    assert sorted(os.listdir(os.fsencode(tmp_path))) == [b"b", b"not-utf8-\xff.magnet"]


def test_failed_writes_the_record_first_and_partial_leaves_the_inbox_file(tmp_path: Path) -> None:
    f = folders(tmp_path)
    spool = Spool(f)
    (f.inbox / "q.json").write_text("{}")
    record = error_record("bad_hash", "line 2", "local", [LineError(2, "bad_hash", "short", "abc")])
    spool.failed(f.inbox / "q.json", record, data=b'["abc"]')
    assert (f.inbox / "q.json").exists()
    saved = json.loads((f.failed / "q.json.error.json").read_text())
    assert saved["reason"] == "bad_hash" and saved["lines"][0] == {
        "line": 2,
        "reason": "bad_hash",
        "detail": "short",
        "text": "abc",
    }
    assert saved["failed_at"].endswith("Z")
    spool.failed(f.inbox / "q.json", error_record("x", "y"))
    assert not (f.inbox / "q.json").exists()
    assert (f.failed / "q.2.json.error.json").exists()


def test_prune_removes_only_old_files(tmp_path: Path) -> None:
    old, new = tmp_path / "old.magnet", tmp_path / "new.magnet"
    old.write_text("x")
    new.write_text("y")
    assert prune(tmp_path, days=1, now=time.time() + 2 * 86400) == 2
    new.write_text("y")
    assert prune(tmp_path, days=1) == 0 and new.exists()


def test_status_snapshot_roundtrip_and_staleness(tmp_path: Path) -> None:
    snap = status.Snapshot(
        pid=os.getpid(),
        started_at="x",
        probe_interval=1,
        vpn=None,
        instances=[status.InstanceView("a", "http://x/", "AUTH_FAILED", "wrong password")],
        inbox=3,
        held=3,
        oldest_waiting="a.magnet",
        oldest_waiting_age=75,
        oldest_waiting_error="move failed: disk full",
    )
    status.write(tmp_path, snap.to_dict())
    data = status.read(tmp_path)
    assert data is not None and status.is_running(data)
    text = status.render(data)
    assert "running" in text and "3 waiting" in text and "HELD" in text and "wrong password" in text
    assert "last error: move failed: disk full" in text
    assert "last error: move failed: disk full" in text
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    assert not status.is_running(data, later)
    assert "NOT RUNNING" in status.render(data, later)
    assert status.read(tmp_path / "nowhere") is None


def test_the_snapshot_is_replaced_whole_but_not_fsynced_unlike_the_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", synced.append)
    snap = status.Snapshot(pid=os.getpid(), started_at="x", probe_interval=1, vpn=None, instances=[])
    status.write(tmp_path, snap.to_dict())
    assert synced == [], "a snapshot after every pass must not wait for the disk"
    assert status.read(tmp_path) == snap.to_dict()
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"], "no temporary file left"
    (tmp_path / "status.json").write_text('{"pid": 1, "upd', encoding="utf-8")  # cut short by a power cut
    assert status.read(tmp_path) is None, "taken for no snapshot at all"
    spool_module.write_atomic(tmp_path / "record.json", b"{}")
    assert len(synced) == 1, "a record is fsynced before it is renamed into place"


def test_notifier_speaks_to_abstract_sockets_and_paces_the_watchdog() -> None:
    name = f"magnetd-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name)
        server.settimeout(2)
        notifier = Notifier({"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "2000000"})
        assert notifier.watchdog_interval == 2.0
        notifier.ready("1 waiting")
        assert server.recv(1024) == b"READY=1\nSTATUS=1 waiting"
        notifier.watchdog(100.0)
        notifier.watchdog(100.5)  # too soon: nothing sent
        notifier.watchdog(101.0)
        assert server.recv(1024) == b"WATCHDOG=1"
        assert server.recv(1024) == b"WATCHDOG=1"
    assert not Notifier({}).send("READY=1")
    assert Notifier({"WATCHDOG_USEC": "5", "WATCHDOG_PID": "1"}).watchdog_interval is None


@pytest.mark.parametrize(
    ("statuses", "code"),
    [
        (["OK", "OK"], StatusCode.OK),
        (["OK", "VPN_DOWN"], StatusCode.DEGRADED),
        (["UNREACHABLE", "AUTH_FAILED"], StatusCode.HOLDING),
    ],
)
def test_status_exits_like_a_monitoring_plugin(statuses: list[str], code: StatusCode) -> None:
    snapshot = {
        "pid": os.getpid(),
        "probe_interval": 10,
        "updated_at": dt.datetime.now(dt.UTC).isoformat(),
        "instances": [{"name": f"i{n}", "status": s} for n, s in enumerate(statuses)],
    }
    assert status.verdict(snapshot) == code
    assert status.verdict({**snapshot, "updated_at": "2020-01-01T00:00:00Z"}) == StatusCode.NOT_RUNNING
    assert status.verdict({**snapshot, "pid": 0}) == StatusCode.NOT_RUNNING
    assert status.verdict(None) == StatusCode.NOT_RUNNING


@pytest.mark.parametrize("inbox", ["in", "deep/in", "/"])
def test_relative_is_what_str_of_relative_to_writes(tmp_path: Path, inbox: str) -> None:
    root = Path(inbox) if inbox == "/" else tmp_path / inbox
    spool = Spool(Folders(root, tmp_path / "sent", tmp_path / "failed", tmp_path / "state"))
    for path in (root / "a.magnet", root / "tv" / "b c.magnet", root / "books" / "sf" / "d.json"):
        assert spool.relative(path) == str(path.relative_to(root))
    if inbox != "/":  # everything is below /
        with pytest.raises(ValueError):
            spool.relative(tmp_path / "elsewhere" / "a.magnet")
