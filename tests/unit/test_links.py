"""Links to .torrent files at the edges: how they are shown, the limits, `magnetd add`, `/api/add`."""

from __future__ import annotations

from pathlib import Path

import pytest

from magnetd import config
from magnetd.cli import main
from magnetd.intake.links import FetchLimits, link_error, shown, shown_text
from magnetd.model import FileKind
from magnetd.telemetry.bodies import BadBody, check_add

CONFIG = """
folders: {inbox: ./in, sent: ./sent, failed: ./failed}
instances:
  - {name: a, url: "http://127.0.0.1:1/", username: admin, password_env: MAGNETD_TEST_PW}
"""


@pytest.mark.parametrize(
    ("url", "seen"),
    [
        (
            "https://prowlarr.lan:9696/1/download?apikey=SECRET&link=x",
            "https://prowlarr.lan:9696/1/download?…",
        ),
        ("http://user:SECRET@tracker.lan/dl/1.torrent", "http://tracker.lan/dl/1.torrent"),
        ("HTTP://[::1]:8080/x?passkey=SECRET#frag", "http://[::1]:8080/x?…"),
        ("https://tracker.lan/rss/1.torrent", "https://tracker.lan/rss/1.torrent"),
    ],
)
def test_a_link_is_shown_without_its_query_or_credentials(url: str, seen: str) -> None:
    assert shown(url) == seen
    assert shown_text(url) == seen
    assert "SECRET" not in shown(url)


def test_other_links_are_shown_without_their_query_too_but_magnets_stay() -> None:
    assert shown_text("ftp://h/x?passkey=SECRET") == "ftp://h/x?…"
    assert shown_text("magnet:?xt=urn:btih:" + "a" * 40) == "magnet:?xt=urn:btih:" + "a" * 40


def test_unfetchable_links() -> None:
    assert link_error("https://h/x") is None
    assert [link_error(t).reason for t in ("http://", "https://h/\x07", "http://h/" + "x" * 70000)] == [  # type: ignore[union-attr]
        "not_magnet",
        "control_chars",
        "line_too_long",
    ]


def test_the_fetch_limits_are_read_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "magnetd.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    assert config.load(path, {"MAGNETD_TEST_PW": "pw"}).fetch == FetchLimits(10 * 1024 * 1024, 30.0, 5)
    limits = "limits: {max_torrent_bytes: 2048, fetch_timeout: 2.5, fetch_attempts: 2}\n"
    path.write_text(CONFIG + limits, encoding="utf-8")
    assert config.load(path, {"MAGNETD_TEST_PW": "pw"}).fetch == FetchLimits(2048, 2.5, 2)
    path.write_text(CONFIG + "limits: {max_torrent_bytes: 0, fetch_timeout: 0, fetch_attempts: x}\n")
    with pytest.raises(config.ConfigError) as caught:
        config.load(path, {"MAGNETD_TEST_PW": "pw"})
    keys = {p.key for p in caught.value.problems}
    assert {"limits.max_torrent_bytes", "limits.fetch_timeout", "limits.fetch_attempts"} <= keys


def test_magnetd_add_drops_a_link_as_a_magnet_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "magnetd.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    link = "https://prowlarr.lan/1/download?apikey=SECRET"
    assert main(["add", "--config", str(path), link]) == 0
    [dropped] = (tmp_path / "in").glob("*.magnet")
    assert dropped.read_text() == link + "\n"
    assert main(["add", "--config", str(path), "ftp://h/x.torrent?passkey=SECRET"]) == 1
    err = capsys.readouterr().err
    assert "not_magnet" in err and "SECRET" not in err


def test_api_add_takes_links_but_not_other_schemes() -> None:
    assert check_add(b"https://prowlarr.lan/1/download?apikey=SECRET\n", "text/plain") == FileKind.MAGNET
    assert check_add(b'{"magnets": ["http://jackett.lan/dl/x?k=1"]}', "application/json") == FileKind.JSON
    with pytest.raises(BadBody) as caught:
        check_add(b"file:///etc/passwd\n", "text/plain")
    assert caught.value.reason == "not_magnet"
