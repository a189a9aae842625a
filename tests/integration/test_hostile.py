"""Hostile input against a running daemon: every bad file gets a reason, nothing crashes or leaks."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon import Daemon, drop, instance, wait_for
from tests.integration.conftest import magnet
from tests.qbt import Qbt, need_qbt
from tests.realparts import need_program, need_root

MiB = 1024 * 1024

BAD: dict[str, tuple[bytes, str]] = {
    "empty.magnet": (b"", "empty"),
    "binary.magnet": (b"\x00\x01\x02magnet:?xt=urn:btih:" + b"a" * 40, "binary"),
    "latin1.magnet": (("magnet:?xt=urn:btih:" + "a" * 40 + "&dn=caf\xe9").encode("latin-1"), "invalid_utf8"),
    "noxt.magnet": (b"magnet:?dn=nothing", "missing_xt"),
    "short.magnet": (b"magnet:?xt=urn:btih:abc", "bad_hash"),
    "alphabet.magnet": (b"magnet:?xt=urn:btih:" + b"z" * 40, "bad_hash"),
    "ftp.magnet": (b"ftp://example.invalid/file.torrent", "not_magnet"),
    "js.magnet": (b"javascript:alert(1)", "not_magnet"),
    "file.magnet": (b"file:///etc/passwd", "not_magnet"),
    "elsewhere.url": (b"[InternetShortcut]\r\nURL=ftp://example.invalid/\r\n", "not_magnet"),
    "string.json": (b'{"magnets": "magnet:?xt=urn:btih:' + b"a" * 40 + b'"}', "bad_shape"),
    "number.json": (b'{"magnets": 5}', "bad_shape"),
    "null.json": (b'{"magnets": null}', "bad_shape"),
    "deep.json": (b"[" * 100_000 + b"]" * 100_000, "bad_json"),
    "list.torrent": (b"l4:spame", "bad_torrent"),
    "noinfo.torrent": (b"d3:foo3:bare", "bad_torrent"),
    "garbage.torrent": (os.urandom(4096), "bad_torrent"),
    "longline.magnet": (b"magnet:?xt=urn:btih:" + b"a" * 40 + b"&dn=" + b"x" * 70_000, "line_too_long"),
    "toomany.magnet": (b"\n".join(b"b" * 40 for _ in range(100_001)), "too_many_magnets"),
}


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[tuple[Qbt, Daemon]]:
    need_qbt()
    qbt = Qbt(tmp_path / "qbt")
    qbt.start()
    daemon = Daemon(tmp_path / "magnetd", [instance("local", qbt.url, qbt.password)])
    yield qbt, daemon
    if daemon.alive():
        daemon.stop()
    qbt.stop()


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_corpus_of_bad_files_beside_good_ones(fresh: tuple[Qbt, Daemon]) -> None:
    qbt, daemon = fresh
    daemon.start()
    goods = {
        "plain.magnet": magnet("plain"),
        "sp ace \"quoted\" 'single'.magnet": magnet("spaces"),
        "new\nline.magnet": magnet("newline"),
        "ünïcödé 日本語.magnet": magnet("unicode"),
    }
    for name, (link, _) in goods.items():
        drop(daemon.inbox, name, link)
    for name, (data, _) in BAD.items():
        drop(daemon.inbox, name, data)
    huge = daemon.inbox / ".huge.tmp"
    with open(huge, "wb") as handle:
        handle.truncate(64 * MiB)  # sparse: 64 MiB of NULs that must never be read
    os.rename(huge, daemon.inbox / "huge.magnet")
    os.symlink("/etc/passwd", daemon.inbox / "link.magnet")
    (daemon.inbox / "folder.magnet").mkdir()

    expected = {
        **{name: reason for name, (_, reason) in BAD.items()},
        "huge.magnet": "too_large",
        "link.magnet": "symlink",
    }
    wait_for(lambda: all((daemon.failed / f"{n}.error.json").exists() for n in expected), 60, "every record")
    for name, reason in expected.items():
        record = json.loads((daemon.failed / f"{name}.error.json").read_text())
        assert record["reason"] == reason, (name, record)
        assert record["detail"] and record["failed_at"]
    assert (daemon.failed / "link.magnet").is_symlink(), "the link itself moved, its target never copied"
    wait_for(lambda: len(daemon.files(daemon.sent)) == len(goods), 30, "good files in sent/")
    assert sorted(daemon.files(daemon.sent)) == sorted(goods)
    assert (daemon.inbox / "folder.magnet").is_dir()
    assert daemon.files(daemon.inbox) == []

    api = qbt.api()
    api.login()
    listed = {t["hash"] for t in api.torrents()}
    assert listed == {h for _, h in goods.values()}, "nothing but the good magnets reached qBittorrent"
    assert daemon.alive()
    assert daemon.process is not None
    assert peak_rss_mb(daemon.process.pid) < 150
    output = daemon.output()
    assert qbt.password not in output
    assert "Traceback" not in output
    assert daemon.stop() == 0


def test_slow_in_place_writer_has_every_line_sent(fresh: tuple[Qbt, Daemon]) -> None:
    qbt, daemon = fresh
    daemon.start()
    links = [magnet(f"slow{i}") for i in range(6)]
    with open(daemon.inbox / "slow.magnet", "w") as handle:  # no temp name, written in place
        for link, _ in links:
            handle.write(link + "\n")
            handle.flush()
            time.sleep(0.5)
    wait_for(lambda: (daemon.sent / "slow.magnet").exists(), 30, "slow.magnet in sent/")
    api = qbt.api()
    api.login()
    hashes = {h for _, h in links}
    assert {t["hash"] for t in api.torrents(hashes="|".join(hashes))} == hashes
    assert daemon.files(daemon.failed) == []
    assert daemon.stop() == 0


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def test_read_only_and_full_failed_folder_keep_files_in_the_inbox(fresh: tuple[Qbt, Daemon]) -> None:
    need_root("mounting a read-only and a full file system")
    need_program("mount")
    _, daemon = fresh
    area = daemon.root / "area"
    area.mkdir(parents=True)
    mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(area))
    try:
        for name in ("inbox", "sent", "failed"):
            (area / name).mkdir()
        daemon.inbox, daemon.sent, daemon.failed = area / "inbox", area / "sent", area / "failed"
        daemon.config_path.write_text(
            daemon.config_path.read_text()
            .replace("inbox: inbox", f"inbox: {area}/inbox")
            .replace("sent: sent", f"sent: {area}/sent")
            .replace("failed: failed", f"failed: {area}/failed")
        )

        def moves_failed_with(text: str) -> bool:
            errors = [str(e.get("error", "")).lower() for e in daemon.events("file_move_failed")]
            return any(text in error for error in errors)

        mount("--bind", str(daemon.failed), str(daemon.failed))
        mount("-o", "remount,bind,ro", str(daemon.failed))
        daemon.start()
        drop(daemon.inbox, "bad.magnet", "not a magnet")
        wait_for(lambda: moves_failed_with("read-only"), 30, "a move failing on the read-only folder")
        assert (daemon.inbox / "bad.magnet").exists()
        wait_for(
            lambda: "read-only" in str(daemon.status()["oldest_waiting_error"]).lower(),
            10,
            "the status saying why the file waits",
        )
        filler = area / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:  # fill the disk to the last byte
            for size in (65536, 4096, 1):
                with contextlib.suppress(OSError):
                    while True:
                        os.write(fd, b"\0" * size)
        finally:
            os.close(fd)
        mount("-o", "remount,bind,rw", str(daemon.failed))
        subprocess.run(["umount", str(daemon.failed)], check=True)
        wait_for(lambda: moves_failed_with("no space"), 60, "a move failing on the full disk")
        assert (daemon.inbox / "bad.magnet").exists()
        assert daemon.alive()
        filler.unlink()
        wait_for(lambda: (daemon.failed / "bad.magnet.error.json").exists(), 90, "moved once space is back")
        assert not (daemon.inbox / "bad.magnet").exists()
        assert daemon.stop() == 0
    finally:
        if daemon.alive():
            daemon.stop()
        subprocess.run(["umount", "-l", str(daemon.root / "area" / "failed")], capture_output=True)
        subprocess.run(["umount", "-l", str(area)], capture_output=True)
