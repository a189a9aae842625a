"""The loop's side of fetching: links handed out, picked up, retried with back-off, failed."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

from structlog.testing import capture_logs

from magnetd.config import Folders
from magnetd.delivery.fetcher import FETCH_FAILED, Fetch, Fetcher
from magnetd.delivery.fetches import Fetches
from magnetd.delivery.settler import Counters, Job, Settler
from magnetd.intake import items
from magnetd.intake.inbox import Inbox
from magnetd.intake.links import FetchLimits
from magnetd.model import AddOptions, Arrival, Seen
from magnetd.records.spool import Spool, ensure_folders
from tests.fakes import FakeClock

LINK = "https://indexer.lan/dl/1?apikey=SECRET"
MAGNET = "magnet:?xt=urn:btih:" + "cd" * 20
TORRENT = Fetch(body=b"d4:infod4:name1:xee", torrent_id="ab" * 20, name="x")
BUSY = Fetch(reason=FETCH_FAILED, detail="https://indexer.lan/dl/1?… answered HTTP 503", transient=True)


class Inline(Fetcher):
    """The real Fetcher's contract, run at once on the caller's thread: results in order per link."""

    def __init__(self, script: dict[str, list[Fetch]]) -> None:
        super().__init__(FetchLimits(), lambda: None)
        self.script = script
        self.calls: list[str] = []

    def submit(self, url: str) -> Future[Fetch]:
        self.calls.append(url)
        future: Future[Fetch] = Future()
        answers = self.script[url]
        future.set_result(answers.pop(0) if len(answers) > 1 else answers[0])
        return future


def setup(
    tmp_path: Path, script: dict[str, list[Fetch]], attempts: int = 5
) -> tuple[Fetches, Inbox, Folders, FakeClock]:
    folders = Folders(tmp_path / "in", tmp_path / "sent", tmp_path / "failed", tmp_path / "state")
    ensure_folders(folders)
    clock = FakeClock()
    inbox = Inbox(folders.inbox, clock=clock)
    settler = Settler(Spool(folders), inbox, Counters())
    limits = FetchLimits(fetch_attempts=attempts)
    return Fetches(limits, inbox, settler, lambda: None, clock, Inline(script)), inbox, folders, clock


def calls(fetches: Fetches) -> list[str]:
    assert isinstance(fetches.fetcher, Inline)
    return fetches.fetcher.calls


def job(inbox: Inbox, folders: Folders, name: str, text: str) -> Callable[[], Job]:
    path = folders.inbox / name
    path.write_text(text)
    inbox.note(Seen(path, Arrival.MOVED))

    def make() -> Job:
        waiting = next(w for w in inbox.due() if w.path == path)
        data = path.read_bytes()
        return Job(waiting, name, data, items.parse_item(name, data), AddOptions())

    return make


def test_a_file_of_magnets_holds_no_link() -> None:
    assert items.parse_item("a.magnet", f"{MAGNET}\n".encode()).links == 0
    assert items.parse_item("a.magnet", f"{MAGNET}\n{LINK}\n".encode()).links == 1


def test_a_link_is_retried_with_back_off_then_sent_as_a_torrent(tmp_path: Path) -> None:
    fetches, inbox, folders, clock = setup(tmp_path, {LINK: [BUSY, BUSY, TORRENT]})
    make = job(inbox, folders, "a.magnet", f"{MAGNET}\n{LINK}\n")
    with capture_logs() as logs:
        assert fetches.resolve(make()) is None  # handed to the fetcher
        fetches.ripen()  # its fetch ended: due again at once
        assert fetches.resolve(make()) is None  # a 503: not before 2 s
        assert inbox.due() == [] and inbox.next_due() == clock.now + 2
        clock.advance(2)
        assert fetches.resolve(make()) is None
        fetches.ripen()
        assert fetches.resolve(make()) is None  # a 503 again: not before 4 s
        clock.advance(4)
        assert fetches.resolve(make()) is None
        fetches.ripen()
        resolved = fetches.resolve(make())
    assert resolved is not None
    assert [(e.line, e.torrent_id, e.torrent is not None) for e in resolved.item.entries] == [
        (1, "cd" * 20, False),
        (2, "ab" * 20, True),
    ]
    assert resolved.item.entries[1].text == LINK and resolved.item.links == 0
    assert [e["attempt"] for e in logs if e["event"] == "link_retry"] == [1, 2]
    assert not [e for e in logs if e["event"] == "files_held"]
    assert "SECRET" not in json.dumps(logs, default=str)
    assert "HTTP 503" in str(resolved.waiting.last_error)
    assert "SECRET" not in str(resolved.waiting.last_error)


def test_a_link_fails_after_its_attempts_and_keeps_its_key_only_in_the_file(tmp_path: Path) -> None:
    fetches, inbox, folders, clock = setup(tmp_path, {LINK: [BUSY]}, attempts=2)
    make = job(inbox, folders, "a.magnet", f"{LINK}\n")
    for _ in range(3):
        if fetches.resolve(make()) is not None:
            break
        fetches.ripen()
        clock.advance(60)
    assert fetches.resolve(make()) is None  # failed: moved
    assert calls(fetches) == [LINK, LINK]
    record = json.loads((folders.failed / "a.magnet.error.json").read_text())
    assert record["reason"] == FETCH_FAILED and "tried 2 times" in record["detail"]
    assert record["lines"][0]["text"] == "https://indexer.lan/dl/1?…"
    assert (folders.failed / "a.magnet").read_text() == f"{LINK}\n"
    assert len(inbox) == 0


def test_a_refused_link_beside_a_magnet_leaves_the_magnet(tmp_path: Path) -> None:
    gone = Fetch(reason=FETCH_FAILED, detail="https://indexer.lan/dl/1?… answered HTTP 404")
    fetches, inbox, folders, _ = setup(tmp_path, {LINK: [gone]})
    make = job(inbox, folders, "a.magnet", f"{LINK}\n{MAGNET}\n")
    assert fetches.resolve(make()) is None
    fetches.ripen()
    resolved = fetches.resolve(make())
    assert resolved is not None
    assert [e.line for e in resolved.item.entries] == [2]
    assert [(r.line, r.reason, r.text) for r in resolved.item.rejects] == [(1, FETCH_FAILED, LINK)]
    assert calls(fetches) == [LINK]  # a 4xx is not retried


def test_a_redirect_to_a_magnet_becomes_that_magnet(tmp_path: Path) -> None:
    fetches, inbox, folders, _ = setup(tmp_path, {LINK: [Fetch(magnet=MAGNET + "&dn=found")]})
    make = job(inbox, folders, "a.url", f"[InternetShortcut]\nURL={LINK}\n")
    assert fetches.resolve(make()) is None
    fetches.ripen()
    resolved = fetches.resolve(make())
    assert resolved is not None
    entry = resolved.item.entries[0]
    assert (entry.torrent_id, entry.name, entry.magnet is not None) == ("cd" * 20, "found", True)
