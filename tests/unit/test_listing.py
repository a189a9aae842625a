"""Reading the ids from a ``torrents/info`` answer's raw text, against decoding it.

The answers are built from real objects of qbittorrent-nox 4.5.2 and 5.3
(``tests/data/torrents_info_*.json``, one torrent each, as they answered).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from hypothesis import given
from hypothesis import strategies as st

from magnetd.delivery.form import hashes_form
from magnetd.delivery.listing import lists_all
from magnetd.delivery.qbittorrent import Client, InstanceError, matches

DATA = Path(__file__).resolve().parent.parent / "data"
URL = "http://qbt.test:8080/"
LOGIN = URL + "api/v2/auth/login"
INFO = URL + "api/v2/torrents/info"
HEX = "0123456789abcdef"


def real(version: str) -> dict[str, Any]:
    (torrent,) = json.loads((DATA / f"torrents_info_{version}.json").read_text(encoding="utf-8"))
    assert isinstance(torrent, dict)
    return torrent


def torrent_like(version: str, torrent_id: str, v2: str = "", **fields: Any) -> dict[str, Any]:
    torrent = {
        **real(version),
        "hash": torrent_id,
        "infohash_v1": "" if v2 and v2[:40] == torrent_id else torrent_id,
    }
    return {**torrent, "infohash_v2": v2, **fields}


def compact(torrents: list[dict[str, Any]]) -> bytes:
    """As qBittorrent writes it: compact JSON, non-ASCII as UTF-8."""
    return json.dumps(torrents, separators=(",", ":"), ensure_ascii=False).encode()


def decoded_ids(body: bytes) -> set[str]:
    found: set[str] = set()
    for torrent in json.loads(body):
        found |= matches(torrent)
    return found


def test_real_answers_scan_to_the_decoded_ids() -> None:
    for version in ("4.5.2", "5.3"):
        torrent = real(version)
        body = compact([torrent])
        assert decoded_ids(body) == {torrent["hash"]}
        assert lists_all(body, {torrent["hash"]})
        assert not lists_all(body, {torrent["hash"], "9" * 40})


def test_v1_hybrid_and_v2_only_torrents() -> None:
    v1, hybrid_v1, hybrid_v2, v2_only = "a" * 40, "b" * 40, "c" * 64, "d" * 64
    body = compact(
        [
            torrent_like("5.3", v1),
            torrent_like("5.3", hybrid_v1, hybrid_v2, infohash_v1=hybrid_v1),
            torrent_like("5.3", v2_only[:40], v2_only),
        ]
    )
    expected = {v1, hybrid_v1, hybrid_v2[:40], v2_only[:40]}
    assert decoded_ids(body) == expected
    assert lists_all(body, expected)  # the v2 ids through the second, wider search
    assert not lists_all(body, expected | {"9" * 40})


@pytest.mark.parametrize(
    "body", [b"", b"not json", b'{"hash":"' + b"a" * 40 + b'"}', b'[{"hash":"' + b"a" * 40, b"\xff[]"]
)
def test_what_is_no_json_array_is_not_scanned(body: bytes) -> None:
    assert not lists_all(body, {"a" * 40})


def test_an_id_inside_a_name_is_not_found() -> None:
    wanted = "e" * 40
    name = f'x","hash":"{wanted}","infohash_v2":"{wanted}\\'
    body = compact([torrent_like("4.5.2", "f" * 40, name=name, category=f'"hash":"{wanted}"')])
    assert wanted not in decoded_ids(body)
    assert not lists_all(body, {wanted})


PIECES = st.sampled_from([*'ab"\\:,{}[] é\n', '"hash":"', '","infohash_v2":"', HEX * 4])
NAMES = st.lists(PIECES, max_size=8).map("".join)
HASHES = st.text(alphabet=st.sampled_from(HEX + "ABCDEF"), min_size=38, max_size=66) | st.just("")
TORRENTS = st.lists(
    st.fixed_dictionaries(
        {"hash": HASHES, "name": NAMES},
        optional={"infohash_v1": HASHES, "infohash_v2": HASHES, "tags": NAMES, "hash_x": HASHES},
    ),
    max_size=6,
)


@given(TORRENTS, st.booleans(), st.booleans())
def test_the_scan_never_finds_what_decoding_does_not(
    torrents: list[dict[str, Any]], spaced: bool, ascii_only: bool
) -> None:
    separators = (", ", ": ") if spaced else (",", ":")
    body = json.dumps(torrents, separators=separators, ensure_ascii=ascii_only).encode()
    decoded = decoded_ids(body)
    for candidate in set(re.findall(r"[0-9a-f]{40}", body.decode())):  # whatever looks like an id
        if lists_all(body, {candidate}):
            assert candidate in decoded
    if not spaced and all(
        value == value.lower()
        for t in torrents
        for key, value in t.items()
        if key != "name" and key != "tags"
    ):
        assert lists_all(body, decoded)  # qBittorrent's form: nothing is left to decoding


# -- Client.present: the scan when it finds everything, decoding otherwise ----------------------


@pytest.fixture
def client(rsps: responses.RequestsMock) -> Client:
    rsps.add(responses.POST, LOGIN, body="Ok.")
    return Client(URL, "admin", "pw")


@pytest.mark.parametrize("version", ["4.5.2", "5.3"])
def test_present_reads_a_real_style_answer(
    rsps: responses.RequestsMock, client: Client, version: str
) -> None:
    ids = [f"{n:040x}" for n in range(1, 1001)]
    body = compact([torrent_like(version, i, name=f"n{i}") for i in ids[:-1]])
    rsps.add(responses.POST, INFO, body=body, content_type="application/json")
    assert client.present([*ids, "f" * 40]) == set(ids[:-1])


def test_present_decodes_when_the_scan_misses_one(rsps: responses.RequestsMock, client: Client) -> None:
    v2 = "ab" * 32
    body = json.dumps([torrent_like("5.3", "a" * 40), torrent_like("5.3", "B" * 40, v2.upper())]).encode()
    rsps.add(responses.POST, INFO, body=body, content_type="application/json")
    assert client.present(["A" * 40, "b" * 40, v2[:40], "c" * 40]) == {"a" * 40, "b" * 40, v2[:40]}


def test_present_with_an_empty_answer(rsps: responses.RequestsMock, client: Client) -> None:
    rsps.add(responses.POST, INFO, body=b"[]", content_type="application/json")
    assert client.present(["a" * 40]) == set()


@pytest.mark.parametrize("body", [b"<html>busy</html>", b'[{"hash":"' + b"a" * 40 + b'"', b'{"hash":"a"}'])
def test_present_with_a_malformed_answer_is_an_instance_error(
    rsps: responses.RequestsMock, client: Client, body: bytes
) -> None:
    rsps.add(responses.POST, INFO, body=body, content_type="application/json")
    with pytest.raises(InstanceError) as caught:
        client.present(["a" * 40])
    assert caught.value.status == "UNKNOWN"


@given(TORRENTS, st.sets(st.sampled_from(["a" * 40, "b" * 40, HEX * 2 + "01234567"]), max_size=3))
def test_lists_all_only_when_decoding_finds_every_id(
    torrents: list[dict[str, Any]], wanted: set[str]
) -> None:
    body = compact(torrents)
    if lists_all(body, wanted):
        assert wanted <= decoded_ids(body)


def test_lists_all_finds_v2_ids_past_the_hash_fields() -> None:
    hybrid_v2 = "c" * 64
    body = compact(
        [torrent_like("5.3", "a" * 40), torrent_like("5.3", "b" * 40, hybrid_v2, infohash_v1="b" * 40)]
    )
    assert lists_all(body, {"a" * 40, "b" * 40})
    assert lists_all(body, {"a" * 40, hybrid_v2[:40]})
    assert not lists_all(body, {"a" * 40, "d" * 40})
    assert not lists_all(b"<html>", set())


@pytest.mark.parametrize(
    ("ids", "body"),
    [
        ({"a" * 40, "0" * 40}, "hashes=" + "0" * 40 + "%7C" + "a" * 40),
        ({"a|b", "c d", "é"}, "hashes=a%7Cb%7Cc+d%7C%C3%A9"),
        (set(), "hashes="),
    ],
)
def test_hashes_form_is_what_requests_would_send(ids: set[str], body: str) -> None:
    assert hashes_form(ids) == body
    prepared = requests.Request("POST", INFO, data={"hashes": "|".join(sorted(ids))}).prepare()
    assert prepared.body == body


@given(st.sets(st.text(alphabet=st.sampled_from([*HEX, *"XYZxyz|% +é&="]), max_size=42), max_size=5))
def test_hashes_form_is_byte_for_byte_what_requests_would_send(ids: set[str]) -> None:
    prepared = requests.Request("POST", INFO, data={"hashes": "|".join(sorted(ids))}).prepare()
    assert hashes_form(ids) == prepared.body


def test_an_id_that_is_not_hex_is_never_found_by_the_scan() -> None:
    odd = "g" * 40  # what follows a hash field's opening, but not an id the search accepts
    body = compact([torrent_like("4.5.2", odd), torrent_like("4.5.2", "a" * 40)])
    assert not lists_all(body, {odd})
    assert not lists_all(body, {"a" * 40, odd})
    assert not lists_all(body, {"a" * 39})  # cut short: the 40 characters after the opening differ
    assert lists_all(body, {"a" * 40})


def test_present_gives_the_callers_own_ids_lower_cased(rsps: responses.RequestsMock, client: Client) -> None:
    listed = [torrent_like("4.5.2", "a" * 40), torrent_like("4.5.2", "b" * 40)]
    rsps.add(responses.POST, INFO, body=compact(listed), content_type="application/json")
    mine = "".join(["a" * 20, "a" * 20])  # equal to "a" * 40, another object
    assert client.present([mine, "B" * 40, "c" * 40]) == {"a" * 40, "b" * 40}
    (found,) = client.present({mine, "d" * 40})
    assert found is mine
