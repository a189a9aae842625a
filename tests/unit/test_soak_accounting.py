"""The soak benchmark's accounting finds every broken rule (no daemon, no timings)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.soakload import Dropped, account


def put(path: Path, text: str = "x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_account_finds_duplicates_junk_sent_good_failed_missing_and_lost(tmp_path: Path) -> None:
    inbox, sent, failed = tmp_path / "inbox", tmp_path / "sent", tmp_path / "failed"
    h = [f"{i:040x}" for i in range(6)]
    ledger = [
        Dropped("once.magnet", "magnet", "", (h[0],), (), False),
        Dropped("twice.magnet", "magnet", "", (h[1],), (), False),
        Dropped("sub/split.magnet", "partial", "", (h[2],), (), False),
        Dropped("junk.magnet", "junk", "binary", (), (h[5],), False),
        Dropped("refused.url", "url", "", (h[3],), (), True),
        Dropped("gone.json", "json", "", (h[4],), (), False),
        Dropped("waiting.magnet", "magnet", "", (), (), False),
    ]
    put(sent / "once.magnet")
    put(sent / "twice.magnet")
    put(sent / "twice.2.magnet")
    put(sent / "sub" / "split.magnet")
    put(failed / "sub" / "split.magnet", "https://example.invalid/")
    put(failed / "sub" / "split.magnet.error.json")
    put(sent / "junk.magnet")
    put(failed / "refused.url")
    put(failed / "refused.url.error.json")
    put(failed / "orphan.magnet.error.json")
    put(inbox / "waiting.magnet")
    put(inbox / ".hidden.tmp")

    checks = account(ledger, inbox, sent, failed, {h[0], h[1], h[2], h[3], h[5]})

    assert checks["duplicates"] == {"twice.magnet": ["twice.2.magnet", "twice.magnet"]}
    assert checks["junk_sent"] == ["junk.magnet"]
    assert checks["good_failed"] == ["refused.url"]
    assert checks["missing_files"] == ["gone.json"]
    assert checks["lost"] == [{"file": "gone.json", "infohash": h[4]}]
    assert checks["decoys_added"] == [h[5]]
    assert checks["left_in_inbox"] == ["waiting.magnet"]
    assert checks["orphan_error_records"] == ["orphan.magnet.error.json"]
    assert checks["outcomes"] == {"sent": 3, "partial": 1, "failed": 1, "missing": 1, "inbox": 1}
    assert checks["partial_not_split"] == []
