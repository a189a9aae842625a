"""fetch_link against a real HTTP server on 127.0.0.1 playing an indexer (tests/indexer.py)."""

from __future__ import annotations

import hashlib
import secrets
import socket
import time
from collections.abc import Iterator

import fastbencode
import pytest

from magnetd.delivery.fetcher import FETCH_FAILED, NOT_A_TORRENT, TOO_LARGE, Fetch, fetch_link
from magnetd.intake.links import FetchLimits
from tests.indexer import Answer, Indexer, chain, html_page, redirect, torrent_answer

LIMITS = FetchLimits(max_torrent_bytes=10 * 1024 * 1024, fetch_timeout=2.0, fetch_attempts=5)
MAGNET = "magnet:?xt=urn:btih:" + "ab" * 20 + "&dn=x&tr=http%3A%2F%2Ft%2Fa%3Fpasskey%3DPK"


def torrent(name: str = "fetched") -> tuple[bytes, str]:
    info = {b"name": name.encode(), b"piece length": 16384, b"pieces": secrets.token_bytes(20), b"length": 9}
    return bytes(fastbencode.bencode({b"info": info})), hashlib.sha1(fastbencode.bencode(info)).hexdigest()


@pytest.fixture
def indexer() -> Iterator[Indexer]:
    with Indexer() as server:
        yield server


def no_secret(fetch: Fetch, indexer: Indexer) -> None:
    assert indexer.apikey not in fetch.detail
    assert "apikey" not in fetch.detail


def test_a_torrent_behind_an_api_key(indexer: Indexer) -> None:
    body, infohash = torrent()
    fetch = fetch_link(indexer.route("/dl/1", torrent_answer(body)), LIMITS)
    assert (fetch.body, fetch.torrent_id, fetch.name, fetch.reason) == (body, infohash, "fetched", None)
    assert indexer.requests == ["/dl/1?apikey=SECRET&t=get"]


def test_a_redirect_to_a_magnet_is_that_magnet(indexer: Indexer) -> None:
    fetch = fetch_link(indexer.route("/dl/2", redirect(MAGNET)), LIMITS)
    assert fetch.magnet == MAGNET and fetch.body is None


def test_a_chain_of_five_redirects_is_followed(indexer: Indexer) -> None:
    body, infohash = torrent()
    fetch = fetch_link(chain(indexer, "/hop", 5, torrent_answer(body)), LIMITS)
    assert fetch.torrent_id == infohash
    assert indexer.hits("/hop5") == 1


def test_a_sixth_redirect_fails(indexer: Indexer) -> None:
    body, _ = torrent()
    fetch = fetch_link(chain(indexer, "/hop", 6, torrent_answer(body)), LIMITS)
    assert (fetch.reason, fetch.transient) == (FETCH_FAILED, False)
    assert "more than 5" in fetch.detail
    assert indexer.hits("/hop6") == 0
    no_secret(fetch, indexer)


def test_a_redirect_loop_fails_without_going_round(indexer: Indexer) -> None:
    indexer.route("/a", redirect(indexer.link("/b")))
    indexer.route("/b", redirect(indexer.link("/a")))
    fetch = fetch_link(indexer.link("/a"), LIMITS)
    assert fetch.reason == FETCH_FAILED and "loop" in fetch.detail
    assert indexer.hits("/a") == 1 and indexer.hits("/b") == 1
    no_secret(fetch, indexer)


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1/x.torrent"])
def test_a_redirect_to_another_scheme_is_never_followed(indexer: Indexer, target: str) -> None:
    fetch = fetch_link(indexer.route("/dl/3", redirect(target)), LIMITS)
    assert (fetch.reason, fetch.transient, fetch.body) == (FETCH_FAILED, False, None)


def test_a_404_fails_with_its_code(indexer: Indexer) -> None:
    fetch = fetch_link(indexer.route("/gone", Answer(404, b"not found")), LIMITS)
    assert (fetch.reason, fetch.transient) == (FETCH_FAILED, False)
    assert "HTTP 404" in fetch.detail and "?…" in fetch.detail
    no_secret(fetch, indexer)


def test_an_html_page_is_not_a_torrent(indexer: Indexer) -> None:
    fetch = fetch_link(indexer.route("/login", html_page()), LIMITS)
    assert (fetch.reason, fetch.transient) == (NOT_A_TORRENT, False)
    assert "HTTP 200" in fetch.detail
    no_secret(fetch, indexer)


@pytest.mark.parametrize("length", [True, False])
def test_a_20_mib_body_stops_at_the_limit(indexer: Indexer, length: bool) -> None:
    big = Answer(200, b"d" * (20 * 1024 * 1024), length=length)
    limits = FetchLimits(max_torrent_bytes=1024 * 1024, fetch_timeout=10.0)
    fetch = fetch_link(indexer.route("/big", big), limits)
    assert (fetch.reason, fetch.transient) == (TOO_LARGE, False)
    assert ("announced" in fetch.detail) is length
    no_secret(fetch, indexer)


def test_a_slow_answer_times_out_and_may_be_retried(indexer: Indexer) -> None:
    started = time.monotonic()
    fetch = fetch_link(indexer.route("/slow", Answer(200, b"x", delay=10)), FetchLimits(fetch_timeout=0.5))
    assert (fetch.reason, fetch.transient) == (FETCH_FAILED, True)
    assert time.monotonic() - started < 2.0
    no_secret(fetch, indexer)


def test_a_trickling_body_cannot_outlast_the_timeout(indexer: Indexer) -> None:
    body, _ = torrent()
    started = time.monotonic()
    trickle = Answer(200, body, trickle=0.1)  # the whole body would take ~8 s, each byte well in time
    fetch = fetch_link(indexer.route("/trickle", trickle), FetchLimits(fetch_timeout=1.0))
    assert (fetch.reason, fetch.transient) == (FETCH_FAILED, True)
    assert time.monotonic() - started < 2.0


def test_a_503_may_be_retried(indexer: Indexer) -> None:
    fetch = fetch_link(indexer.route("/busy", Answer(503, b"down")), LIMITS)
    assert (fetch.reason, fetch.transient) == (FETCH_FAILED, True)
    assert "HTTP 503" in fetch.detail


def test_a_refused_connection_may_be_retried() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    fetch = fetch_link(f"http://127.0.0.1:{port}/x?passkey=PK", LIMITS)
    assert (fetch.reason, fetch.transient) == (FETCH_FAILED, True)
    assert "PK" not in fetch.detail and "passkey" not in fetch.detail
