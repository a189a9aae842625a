"""Tests for magnetd.intake.magnet: magnet URIs and bare infohashes."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from magnetd.intake.magnet import (
    MAX_LINE_CHARS,
    decode_param,
    parse_hash,
    parse_link,
    parse_magnet,
    query_params,
)
from magnetd.model import Magnet, Rejected

HEX40 = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a"
B32 = base64.b32encode(bytes.fromhex(HEX40)).decode()
SHA256 = hashlib.sha256(b"v2 info").hexdigest()


def reason(text: str) -> str:
    """The reason parse_link rejects ``text`` with."""
    with pytest.raises(Rejected) as info:
        parse_link(text)
    return info.value.reason


def test_v1_hex_magnet() -> None:
    uri = f"magnet:?xt=urn:btih:{HEX40.upper()}&dn=Some+Show&tr=udp%3A%2F%2Ft.example%3A80"
    magnet = parse_magnet(f"  {uri}\n")
    assert magnet == Magnet(uri=uri, torrent_id=HEX40, name="Some Show")


def test_base32_magnet() -> None:
    magnet = parse_magnet(f"magnet:?xt=urn:btih:{B32.lower()}")
    assert magnet.torrent_id == HEX40
    assert magnet.name is None


def test_scheme_and_urn_case_insensitive() -> None:
    assert parse_magnet(f"MAGNET:?xt=URN:BTIH:{HEX40}").torrent_id == HEX40


def test_v2_magnet() -> None:
    magnet = parse_magnet(f"magnet:?xt=urn:btmh:1220{SHA256.upper()}")
    assert magnet.torrent_id == SHA256[:40]


def test_hybrid_magnet_uses_btmh() -> None:
    uri = f"magnet:?xt=urn:btih:{HEX40}&xt=urn:btmh:1220{SHA256}&dn=hybrid"
    magnet = parse_magnet(uri)
    assert magnet.torrent_id == SHA256[:40]
    assert magnet.name == "hybrid"
    assert magnet.uri == uri


def test_numbered_xt_and_other_xt() -> None:
    uri = f"magnet:?xt.1=urn:sha1:ABC&xt.2=urn:btih:{HEX40}"
    assert parse_magnet(uri).torrent_id == HEX40


def test_uri_is_not_reencoded() -> None:
    uri = f"magnet:?dn=a%20b&xt=urn:btih:{HEX40}&tr=http://t/x?a=1"
    assert parse_magnet(uri).uri == uri


@pytest.mark.parametrize(
    "text",
    [
        "http://example.com",
        "https://example.com/a.torrent",
        "javascript:alert(1)",
        "file:///etc/passwd",
        "example.com",
        "",
        "   ",
        "magnetxt=urn:btih:" + HEX40,
    ],
)
def test_not_magnet(text: str) -> None:
    assert reason(text) == "not_magnet"


def test_not_magnet_detail_is_short() -> None:
    with pytest.raises(Rejected) as info:
        parse_magnet("x" * 10_000)
    assert len(info.value.detail) <= 200


@pytest.mark.parametrize(
    "text",
    [
        "magnet:?dn=x",
        "magnet:",
        "magnet:?",
        "magnet:xt=urn:btih:" + HEX40,
        "magnet:?xt=urn:sha1:YNCKHTQCWBTRNJIV4WNAE52SJUQCZO5C",
        "magnet:?xl=10&xt=",
    ],
)
def test_missing_xt(text: str) -> None:
    assert reason(text) == "missing_xt"


@pytest.mark.parametrize(
    "text",
    [
        f"magnet:?xt=urn:btih:{HEX40[:-1]}",
        f"magnet:?xt=urn:btih:{HEX40}0",
        f"magnet:?xt=urn:btih:{'g' * 40}",
        f"magnet:?xt=urn:btih:{B32[:-1]}1",
        "magnet:?xt=urn:btih:",
        f"magnet:?xt=urn:btmh:1220{SHA256[:-1]}",
        f"magnet:?xt=urn:btmh:1114{SHA256}",
        f"magnet:?xt=urn:btmh:{SHA256}",
        f"magnet:?xt=urn:btih:{HEX40}&xt=urn:btmh:1220zz",
        HEX40[:-1],
        HEX40 + "00",
    ],
)
def test_bad_hash(text: str) -> None:
    assert reason(text) == "bad_hash"


def test_line_too_long() -> None:
    text = f"magnet:?xt=urn:btih:{HEX40}&dn=" + "a" * MAX_LINE_CHARS
    assert reason(text) == "line_too_long"


def test_line_at_limit_is_fine() -> None:
    head = f"magnet:?xt=urn:btih:{HEX40}&dn="
    text = head + "a" * (MAX_LINE_CHARS - len(head))
    assert parse_link(text).torrent_id == HEX40


@pytest.mark.parametrize("char", ["\x00", "\x07", "\t", "\n", "\x1b", "\x7f"])
def test_control_chars(char: str) -> None:
    assert reason(f"magnet:?xt=urn:btih:{HEX40}&dn=a{char}b") == "control_chars"


def test_parse_hash_v1_hex() -> None:
    assert parse_hash(f" {HEX40.upper()} ") == Magnet(uri=f"magnet:?xt=urn:btih:{HEX40}", torrent_id=HEX40)


def test_parse_hash_base32() -> None:
    assert parse_hash(B32.lower()) == Magnet(uri=f"magnet:?xt=urn:btih:{HEX40}", torrent_id=HEX40)


def test_parse_hash_v2() -> None:
    magnet = parse_hash(SHA256.upper())
    assert magnet == Magnet(uri=f"magnet:?xt=urn:btmh:1220{SHA256}", torrent_id=SHA256[:40])


@pytest.mark.parametrize("text", ["", "abc", HEX40[:-1], "z" * 40, f"magnet:?xt=urn:btih:{HEX40}"])
def test_parse_hash_none(text: str) -> None:
    assert parse_hash(text) is None


def test_parse_link_both() -> None:
    assert parse_link(HEX40).torrent_id == HEX40
    assert parse_link(f"magnet:?xt=urn:btih:{B32}").torrent_id == HEX40


@given(st.text())
def test_parse_link_any_text(text: str) -> None:
    try:
        magnet = parse_link(text)
    except Rejected as exc:
        assert exc.reason in {
            "not_magnet",
            "missing_xt",
            "bad_hash",
            "line_too_long",
            "control_chars",
        }
        assert len(exc.detail) <= 300
    else:
        assert len(magnet.torrent_id) == 40


@given(st.text(alphabet="0123456789abcdefABCDEF", min_size=40, max_size=40))
def test_hex_round_trip(hex_id: str) -> None:
    magnet = parse_hash(hex_id)
    assert magnet is not None
    assert magnet.torrent_id == hex_id.lower()
    assert parse_link(magnet.uri).torrent_id == hex_id.lower()


@given(st.binary(min_size=20, max_size=20), st.booleans())
def test_base32_round_trip(digest: bytes, lower: bool) -> None:
    b32 = base64.b32encode(digest).decode()
    magnet = parse_hash(b32.lower() if lower else b32)
    assert magnet is not None
    assert magnet.torrent_id == digest.hex()


@given(st.binary(min_size=32, max_size=32))
def test_v2_round_trip(digest: bytes) -> None:
    magnet = parse_hash(digest.hex())
    assert magnet is not None
    assert magnet.torrent_id == digest.hex()[:40]
    assert parse_magnet(magnet.uri) == magnet


QUERY_PIECES = st.sampled_from(
    ["&", "=", "+", "%", "%3D", "%26", "%2B", "%zz", "%C3%A9", "xt", "dn", "tr", "é", "a"]
)


@given(st.lists(QUERY_PIECES, max_size=20).map("".join))
def test_query_params_decode_as_parse_qsl_does(query: str) -> None:
    decoded = [(key, decode_param(raw)) for key, raw in query_params(query)]
    assert decoded == parse_qsl(query, keep_blank_values=True)
