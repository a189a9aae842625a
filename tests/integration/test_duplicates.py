"""A magnet qBittorrent already had counts as sent, but is told apart: its own event, the
``already_present`` count in ``status --json`` and ``/api/status``, and its metric label."""

from __future__ import annotations

from pathlib import Path

import requests

from tests.daemon import drop, wait_for
from tests.integration.conftest import magnet
from tests.integration.test_endpoint import TOKEN, auth, metric, serving_daemon
from tests.qbt import Qbt


def test_duplicates_are_logged_and_counted_apart(tmp_path: Path, qbt: Qbt) -> None:
    old, h_old = magnet("had-it")
    new, h_new = magnet("new-one")
    api = qbt.api()
    api.login()
    api.add_magnet(old)
    wait_for(lambda: api.torrents(hashes=h_old), 10, "the old magnet listed")
    daemon, base = serving_daemon(tmp_path / "magnetd", qbt)
    assert TOKEN
    with daemon:
        drop(daemon.inbox, "both.magnet", f"{old}\n{new}\n")
        wait_for(lambda: daemon.files(daemon.sent) == ["both.magnet"], 20, "the file in sent/")
        events = daemon.events("magnet_already_present")
        assert [(e["file"], e["infohash"], e["instance"]) for e in events] == [
            ("both.magnet", h_old, "local")
        ]
        assert api.torrents(hashes=h_new), "the new one was added"
        wait_for(lambda: daemon.status().get("already_present") == 1, 10, "already_present in status --json")
        api_status = requests.get(f"{base}/api/status", headers=auth(), timeout=5).json()
        assert api_status["already_present"] == 1
        assert metric(base, "magnetd_magnets_total", outcome="already_present") == 1
        assert metric(base, "magnetd_magnets_total", outcome="added") == 1
