"""Links to .torrent files, end to end: a real indexer on 127.0.0.1, the real daemon, a real qBittorrent.

Each kind of answer ends as the contract says, checked by infohash in qbittorrent-nox,
and the API key appears nowhere magnetd writes about it (log, status, .error.json).
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.daemon import Daemon, drop, instance, wait_for
from tests.indexer import Answer, Indexer, chain, html_page, redirect, torrent_answer
from tests.integration.conftest import magnet, torrent_file
from tests.qbt import Qbt

SECRET = "SECRET"


def listed(qbt: Qbt, infohash: str) -> bool:
    api = qbt.api()
    api.login()
    return bool(api.torrents(hashes=infohash))


def error_record(daemon: Daemon, name: str) -> dict[str, object]:
    record: dict[str, object] = json.loads((daemon.failed / f"{name}.error.json").read_text())
    return record


def test_links_end_as_the_contract_says(tmp_path: Path, qbt: Qbt) -> None:
    keyed, h_keyed = torrent_file("behind-a-key")
    chained, h_chained = torrent_file("chained")
    flaky, h_flaky = torrent_file("flaky")
    added, h_added = torrent_file("added-by-cli")
    found, h_found = magnet("redirected")
    plain, h_plain = magnet("plain")
    limits = {"fetch_timeout": 1.5, "fetch_attempts": 3}
    daemon = Daemon(tmp_path / "magnetd", [instance("local", qbt.url, qbt.password)], limits=limits)
    with Indexer(SECRET) as ix, daemon:
        daemon.start()
        drop(daemon.inbox, "key.magnet", ix.route("/dl/key", torrent_answer(keyed)) + "\n")
        drop(
            daemon.inbox,
            "prowlarr.url",
            f"[InternetShortcut]\r\nURL={ix.route('/dl/m', redirect(found))}\r\n",
        )
        drop(daemon.inbox, "chain.magnet", chain(ix, "/hop", 3, torrent_answer(chained)) + "\n")
        busy = ix.route("/dl/busy", Answer(503, b"down"), Answer(503, b"down"), torrent_answer(flaky))
        drop(daemon.inbox, "busy.magnet", busy + "\n")
        queue = [ix.route("/dl/404", Answer(404, b"gone")), ix.route("/dl/html", html_page()), plain]
        drop(daemon.inbox, "mixed.json", json.dumps({"magnets": queue}))
        drop(daemon.inbox, "big.magnet", ix.route("/dl/big", Answer(200, b"d" * (20 << 20))) + "\n")
        drop(daemon.inbox, "slow.magnet", ix.route("/dl/slow", Answer(200, keyed, delay=30)) + "\n")
        loop = ix.route("/dl/loop", redirect(ix.link("/dl/loop")))
        drop(daemon.inbox, "loop.magnet", loop + "\n")
        cli = daemon.command("add", ix.route("/dl/cli", torrent_answer(added)))
        assert cli.returncode == 0, cli.stderr

        wanted = {"key.magnet", "prowlarr.url", "chain.magnet", "busy.magnet", "mixed.json"}
        wait_for(lambda: wanted <= set(daemon.files(daemon.sent)), 40, "the good links in sent/")
        for infohash in (h_keyed, h_found, h_chained, h_flaky, h_added, h_plain):
            assert listed(qbt, infohash), infohash
        assert ix.hits("/dl/busy") == 3, "two 503s, then the torrent"

        failed = {"mixed.json", "big.magnet", "slow.magnet", "loop.magnet"}
        wait_for(lambda: failed <= set(daemon.files(daemon.failed)), 40, "the bad links in failed/")
        mixed = error_record(daemon, "mixed.json")
        lines = mixed["lines"]
        assert isinstance(lines, list)
        assert [(x["line"], x["reason"]) for x in lines] == [(1, "fetch_failed"), (2, "not_a_torrent")]
        assert "HTTP 404" in lines[0]["detail"] and "HTTP 200" in lines[1]["detail"]
        assert lines[0]["text"] == f"{ix.base}/dl/404?…"
        assert error_record(daemon, "big.magnet")["reason"] == "too_large"
        slow = error_record(daemon, "slow.magnet")
        assert slow["reason"] == "fetch_failed" and "3 times" in str(slow["detail"])
        assert ix.hits("/dl/slow") == 3
        assert error_record(daemon, "loop.magnet")["reason"] == "fetch_failed"
        assert [e["attempt"] for e in daemon.events("link_retry") if "/dl/busy" in e["link"]] == [1, 2]
        fetched = {e["link"]: e for e in daemon.events("link_fetched")}
        assert fetched[f"{ix.base}/dl/key?…"]["infohash"] == h_keyed
        assert fetched[f"{ix.base}/dl/m?…"]["kind"] == "magnet"
        # the failed file keeps the link whole, so that `magnetd retry` can fetch it again
        assert SECRET in (daemon.failed / "big.magnet").read_text()
        assert json.loads((daemon.failed / "mixed.json").read_text())["magnets"] == queue[:2]
        status = json.dumps(daemon.status())

    for text in (daemon.output(), status, *(p.read_text() for p in daemon.failed.glob("*.error.json"))):
        assert SECRET not in text
        assert "apikey" not in text


def test_only_http_links_are_fetched(tmp_path: Path, qbt: Qbt) -> None:
    daemon = Daemon(tmp_path / "magnetd", [instance("local", qbt.url, qbt.password)])
    with daemon:
        daemon.start()
        drop(daemon.inbox, "ftp.magnet", "ftp://127.0.0.1/x.torrent?passkey=PK\nfile:///etc/passwd\n")
        wait_for(lambda: daemon.files(daemon.failed) == ["ftp.magnet", "ftp.magnet.error.json"], 20, "failed")
        record = json.loads((daemon.failed / "ftp.magnet.error.json").read_text())
        assert [x["reason"] for x in record["lines"]] == ["not_magnet", "not_magnet"]
        assert record["lines"][0]["text"] == "ftp://127.0.0.1/x.torrent?…"
        assert "PK" in (daemon.failed / "ftp.magnet").read_text()
        assert not daemon.events("link_fetched") and not daemon.events("link_failed")
