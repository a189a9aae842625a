"""Every file kind, dropped into a running daemon, ends in a real qBittorrent and in sent/."""

from __future__ import annotations

import json
import shutil
import signal

from tests.daemon import Daemon, drop, wait_for
from tests.integration.conftest import magnet, torrent_file
from tests.qbt import Qbt


def listed(qbt: Qbt, *hashes: str) -> dict[str, dict[str, object]]:
    api = qbt.api()
    api.login()
    return {t["hash"]: t for t in api.torrents(hashes="|".join(hashes))}


def test_every_kind_arrives_with_its_options(daemon: Daemon, qbt: Qbt) -> None:
    daemon.start()
    single, h1 = magnet("single")
    multi = [magnet(f"multi{i}") for i in range(3)]
    shortcut, h_url = magnet("shortcut")
    queued = [magnet(f"queued{i}") for i in range(2)]
    book, h_book = magnet("book")
    torrent, h_torrent = torrent_file("file")
    drop(daemon.inbox, "sonarr.magnet", single)  # no trailing newline, as Sonarr writes it
    drop(daemon.inbox, "multi.magnet", "# three links\n\n" + "\r\n".join(m for m, _ in multi) + "\n")
    drop(daemon.inbox, "link.url", f"[InternetShortcut]\r\nURL={shortcut}\r\n")
    drop(
        daemon.inbox,
        "queue.json",
        json.dumps(
            {
                "saved_at": "2026-11-23T10:00:00Z",
                "reason": "vpn down",
                "instructions": "add these",
                "magnets": [m for m, _ in queued],
                "category": "queued",
                "paused": True,
                "tags": ["wf"],
            }
        ),
    )
    drop(daemon.inbox, "file.torrent", torrent)
    drop(daemon.inbox / "books", "book.magnet", book + "\n")

    everything = [h1, *(h for _, h in multi), h_url, *(h for _, h in queued), h_book, h_torrent]
    seen = wait_for(
        lambda: t if len(t := listed(qbt, *everything)) == len(everything) else {},
        30,
        "all torrents in qBittorrent",
    )
    assert seen[h_book]["category"] == "books"
    for _, h in queued:
        assert seen[h]["category"] == "queued"
        assert "wf" in str(seen[h]["tags"])
        assert str(seen[h]["state"]).startswith(("paused", "stopped"))
    wait_for(lambda: len(daemon.files(daemon.sent)) == 6, 10, "six files in sent/")
    assert daemon.files(daemon.sent) == sorted(
        ["sonarr.magnet", "multi.magnet", "link.url", "queue.json", "file.torrent", "books/book.magnet"]
    )
    assert daemon.files(daemon.inbox) == []
    events = daemon.events("file_sent")
    assert {e["file"] for e in events} == set(daemon.files(daemon.sent))
    assert all(e["instance"] == "local" and e["outcome"] == "sent" for e in events)
    assert daemon.stop() == 0


def test_bad_files_fail_with_reasons_and_temp_files_stay(daemon: Daemon, qbt: Qbt) -> None:
    daemon.start()
    good, h_good = magnet("mixed-good")
    drop(daemon.inbox, "garbage.magnet", "this is not a magnet\n")
    drop(daemon.inbox, "broken.json", '{"magnets": [')
    drop(daemon.inbox, "mixed.magnet", f"{good}\nnot-a-link\n")
    (daemon.inbox / ".x.part").write_text(magnet()[0])
    expected = {
        f"{name}{suffix}"
        for name in ("garbage.magnet", "broken.json", "mixed.magnet")
        for suffix in ("", ".error.json")
    }
    wait_for(lambda: set(daemon.files(daemon.failed)) == expected, 30, "three files and records in failed/")
    garbage = json.loads((daemon.failed / "garbage.magnet.error.json").read_text())
    assert garbage["reason"] == "not_magnet"
    assert garbage["lines"][0]["line"] == 1
    broken = json.loads((daemon.failed / "broken.json.error.json").read_text())
    assert broken["reason"] == "bad_json"
    mixed = json.loads((daemon.failed / "mixed.magnet.error.json").read_text())
    assert [line["line"] for line in mixed["lines"]] == [2]
    assert (daemon.failed / "mixed.magnet").read_text() == "not-a-link\n"
    wait_for(lambda: (daemon.sent / "mixed.magnet").exists(), 10, "mixed.magnet in sent/")
    assert (daemon.sent / "mixed.magnet").read_text().strip() == good
    assert h_good in listed(qbt, h_good)
    assert (daemon.inbox / ".x.part").exists()
    assert {e["reason"] for e in daemon.events("file_failed")} == {"not_magnet", "bad_json"}
    assert [e["file"] for e in daemon.events("file_partial")] == ["mixed.magnet"]
    assert daemon.stop() == 0


def test_files_dropped_while_stopped_are_sent_and_status_reports_ok(daemon: Daemon, qbt: Qbt) -> None:
    early, h_early = magnet("early")
    drop(daemon.inbox, "early.magnet", early)
    daemon.start()
    wait_for(lambda: (daemon.sent / "early.magnet").exists(), 30, "early.magnet in sent/")
    assert h_early in listed(qbt, h_early)
    status = wait_for(
        lambda: (s := daemon.status()) and s["instances"][0]["status"] == "OK" and s["inbox"] == 0 and s,
        10,
        "status OK with the inbox empty",
    )
    assert status["running"] is True
    assert status["vpn"] is None
    assert status["sent"] >= 1
    assert "updated_at" in status
    assert daemon.stop() == 0
    stale = daemon.status()
    assert stale["running"] is False and stale["stale"] is True


def test_already_present_counts_as_sent(daemon: Daemon, qbt: Qbt) -> None:
    link, infohash = magnet("again")
    api = qbt.api()
    api.login()
    api.add_magnet(link)
    wait_for(lambda: listed(qbt, infohash), 10, "pre-added torrent")
    daemon.start()
    drop(daemon.inbox, "again.magnet", link)
    wait_for(lambda: (daemon.sent / "again.magnet").exists(), 30, "again.magnet in sent/")
    assert daemon.stop() == 0


def test_sigint_stops_cleanly(daemon: Daemon) -> None:
    daemon.start()
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGINT)
    assert daemon.process.wait(30) == 0
    assert daemon.events("daemon_stopped")


def test_inbox_removed_while_running_is_recreated_and_watched(daemon: Daemon, qbt: Qbt) -> None:
    daemon.start()
    shutil.rmtree(daemon.inbox)
    wait_for(lambda: daemon.events("watcher_died"), 20, "watcher_died")
    wait_for(lambda: daemon.inbox.is_dir(), 20, "inbox recreated")
    link, infohash = magnet("after-rebuild")
    drop(daemon.inbox, "after.magnet", link)
    wait_for(lambda: (daemon.sent / "after.magnet").exists(), 30, "after.magnet in sent/")
    assert infohash in listed(qbt, infohash)
    assert daemon.stop() == 0


def test_counts_follow_the_folders_after_retry(daemon: Daemon) -> None:
    """Files retried and failing again are counted once: the counts are the folders'."""
    daemon.start()
    for index in range(5):
        drop(daemon.inbox, f"junk-{index}.magnet", f"not a magnet {index}\n")
    wait_for(lambda: len(list(daemon.failed.glob("*.magnet"))) == 5, 20, "five failed files")
    retried = daemon.command("retry")
    assert retried.returncode == 0, retried.stderr
    wait_for(lambda: len(daemon.events("file_failed")) == 10, 20, "the retried files to fail again")
    wait_for(lambda: not list(daemon.inbox.glob("*.magnet")), 20, "the inbox to empty")
    assert len(list(daemon.failed.glob("*.magnet"))) == 5
    assert daemon.status()["failed"] == 5  # `magnetd status` counts the folders it shows

    def counted() -> bool:
        snapshot: dict[str, int] = json.loads((daemon.state / "status.json").read_text())
        return snapshot["failed"] == 5

    wait_for(counted, 15, "the daemon's own count to follow the folder (at its next rescan)")
