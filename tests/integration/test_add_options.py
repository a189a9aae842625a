"""Every add option reaches a real qBittorrent, read back with ``torrents/info``; the layering
(defaults, then ``folders.options``, then a queue file's own keys) holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.daemon import Daemon, drop, instance, wait_for
from tests.integration.conftest import magnet, torrent_file
from tests.qbt import Qbt


def listed(qbt: Qbt, *hashes: str) -> dict[str, dict[str, Any]]:
    api = qbt.api()
    api.login()
    return {t["hash"]: t for t in api.torrents(hashes="|".join(hashes))}


def files_of(qbt: Qbt, infohash: str) -> list[dict[str, Any]]:
    api = qbt.api()
    api.login()
    found: list[dict[str, Any]] = api.request("GET", "torrents/files", params={"hash": infohash}).json()
    return found


def tags(torrent: dict[str, Any]) -> set[str]:
    return {t.strip() for t in str(torrent["tags"]).split(",") if t.strip()}


def test_every_option_reaches_qbittorrent_layered(tmp_path: Path, qbt: Qbt) -> None:
    tv_path = str(tmp_path / "tv-data")
    defaults = {
        "tags": ["magnetd"],
        "paused": True,
        "sequential": True,
        "first_last_piece": True,
        "ratio_limit": 1.5,
        "seeding_time_limit": 120,
        "up_limit": 100000,
        "dl_limit": 200000,
    }
    folder_options = {
        "tv": {"category": "tv-sonarr", "savepath": tv_path, "tags": ["tv"], "up_limit": 70000},
        "auto": {"auto_tmm": True},
        "checked": {
            "skip_checking": True,
            "content_layout": "Subfolder",
            "savepath": str(tmp_path / "checked"),
        },
        "stop": {"paused": False, "stop_condition": "FilesChecked", "savepath": str(tmp_path / "stop")},
    }
    folders = {
        "inbox": "inbox",
        "sent": "sent",
        "failed": "failed",
        "state": "state",
        "options": folder_options,
    }
    daemon = Daemon(
        tmp_path / "magnetd", [instance("local", qbt.url, qbt.password)], folders=folders, defaults=defaults
    )
    assert daemon.command("check-config").returncode == 0
    daemon.start()
    try:
        plain, h_plain = magnet("plain")
        tv, h_tv = magnet("tv")
        auto, h_auto = magnet("auto")
        books, h_books = magnet("books")
        queued, h_queued = magnet("queued")
        checked, h_checked = torrent_file("checked")
        stop, h_stop = torrent_file("stop")
        drop(daemon.inbox, "plain.magnet", plain)
        drop(daemon.inbox / "tv", "tv.magnet", tv)
        drop(daemon.inbox / "auto", "auto.magnet", auto)
        drop(daemon.inbox / "books", "books.magnet", books)
        own = {
            "magnets": [queued],
            "ratio_limit": 3,
            "rename": "renamed-by-queue",
            "up_limit": 50000,
            "sequential": False,
        }
        drop(daemon.inbox / "tv", "queue.json", json.dumps(own))
        drop(daemon.inbox / "checked", "checked.torrent", checked)
        drop(daemon.inbox / "stop", "stop.torrent", stop)
        everything = [h_plain, h_tv, h_auto, h_books, h_queued, h_checked, h_stop]
        seen = wait_for(
            lambda: t if len(t := listed(qbt, *everything)) == len(everything) else {},
            30,
            "every torrent listed",
        )
        wait_for(lambda: len(daemon.files(daemon.sent)) == 7, 15, "seven files in sent/")
        seen = listed(qbt, *everything)

        p = seen[h_plain]  # defaults only
        assert (p["seq_dl"], p["f_l_piece_prio"]) == (True, True)
        assert (p["ratio_limit"], p["seeding_time_limit"]) == (1.5, 120)
        assert (p["up_limit"], p["dl_limit"]) == (100000, 200000)
        assert str(p["state"]).startswith(("paused", "stopped"))
        assert tags(p) == {"magnetd"} and p["category"] == ""

        t = seen[h_tv]  # the folder's options over the defaults; its tags added to the defaults'
        assert t["category"] == "tv-sonarr" and t["save_path"].rstrip("/") == tv_path
        assert t["auto_tmm"] is False, "a savepath without auto_tmm sends autoTMM=false"
        assert tags(t) == {"magnetd", "tv"} and t["up_limit"] == 70000 and t["dl_limit"] == 200000

        q = seen[h_queued]  # the queue file's own keys win over the folder and the defaults
        assert q["name"] == "renamed-by-queue" and q["ratio_limit"] == 3 and q["up_limit"] == 50000
        assert q["seq_dl"] is False and q["category"] == "tv-sonarr" and q["dl_limit"] == 200000

        assert seen[h_auto]["auto_tmm"] is True and seen[h_auto]["category"] == "auto"
        assert seen[h_books]["category"] == "books", "a folder not listed keeps its name as category"

        c = seen[h_checked]  # skip_checking: every piece taken as there; Subfolder: content in name/name
        assert [(f["name"], f["progress"]) for f in files_of(qbt, h_checked)] == [("checked/checked", 1)]
        assert c["name"] == "checked" and c["auto_tmm"] is False

        # not paused, yet stopped once its files were checked (without the condition: stalledDL)
        stopped = ("pausedDL", "stoppedDL")  # its name before 5.0, and since
        state = wait_for(
            lambda: s if (s := listed(qbt, h_stop)[h_stop]["state"]) in stopped else "", 10, "stopped"
        )
        assert state in stopped
    finally:
        assert daemon.stop() == 0


def test_bad_option_values_are_config_errors(tmp_path: Path) -> None:
    folders = {"inbox": "i", "sent": "s", "failed": "f", "options": {"tv": {"content_layout": "Flat"}}}
    defaults = {"stop_condition": "Never", "ratio_limit": -3, "up_limit": -1, "sequentail": True}
    daemon = Daemon(
        tmp_path, [instance("local", "http://127.0.0.1:1/", "pw")], folders=folders, defaults=defaults
    )
    result = daemon.command("check-config")
    assert result.returncode == 78, result.stderr
    for key in (
        "folders.options.tv.content_layout",
        "defaults.stop_condition",
        "defaults.ratio_limit",
        "defaults.up_limit",
        "defaults.sequentail",
    ):
        assert key in result.stderr, (key, result.stderr)
    assert "did you mean 'sequential'" in result.stderr
