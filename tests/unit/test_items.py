"""Tests for magnetd.intake.items: dropped files into Items, and subsets back into files."""

from __future__ import annotations

import codecs
import hashlib
import json
from typing import Any

import pytest
from fastbencode import bencode
from hypothesis import given
from hypothesis import strategies as st

from magnetd.intake import items
from magnetd.intake.items import MAX_ENTRIES, parse_item, render
from magnetd.intake.links import is_link
from magnetd.intake.magnet import MAX_LINE_CHARS
from magnetd.model import NO_OPTIONS, AddOptions, Entry, FileKind, Item, LineError, Rejected

H1 = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a"
H2 = "dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c"
SHA256 = hashlib.sha256(b"v2").hexdigest()
M1 = f"magnet:?xt=urn:btih:{H1}&dn=One"
M2 = f"magnet:?xt=urn:btih:{H2}&dn=Two"
KINDS = ["a.magnet", "a.url", "a.json", "a.torrent"]


def rejected(name: str, data: bytes) -> Rejected:
    """The Rejected that parse_item raises for this file."""
    with pytest.raises(Rejected) as info:
        parse_item(name, data)
    return info.value


def shortcut(url: str, newline: str = "\r\n") -> str:
    """A Windows Internet Shortcut file's text pointing at ``url``."""
    return newline.join(
        [
            "[{000214A0-0000-0000-C000-000000000046}]",
            "Prop3=19,11",
            "[InternetShortcut]",
            "IDList=",
            f"URL={url}",
            "",
        ]
    )


def torrent(info: dict[bytes, Any]) -> bytes:
    """A torrent file with this info dictionary."""
    return bytes(bencode({b"announce": b"http://t.example/a", b"info": info}))


V1_INFO: dict[bytes, Any] = {
    b"name": b"Some.Show.S01E01.mkv",
    b"length": 1234,
    b"piece length": 16384,
    b"pieces": b"\x01" * 20,
}

# -- general -----------------------------------------------------------------------------


def test_unsupported_kind() -> None:
    assert rejected("a.txt", b"x").reason == "unsupported_kind"
    assert rejected("magnet", M1.encode()).reason == "unsupported_kind"


@pytest.mark.parametrize("name", KINDS)
def test_empty(name: str) -> None:
    assert rejected(name, b"").reason == "empty"


@pytest.mark.parametrize("name", ["a.magnet", "a.url", "a.json"])
def test_whitespace_only_is_empty(name: str) -> None:
    assert rejected(name, b" \r\n\t\n").reason == "empty"
    assert rejected(name, codecs.BOM_UTF8 + b"\n").reason == "empty"


@pytest.mark.parametrize("name", ["a.magnet", "a.url", "a.json"])
def test_binary(name: str) -> None:
    assert rejected(name, M1.encode() + b"\x00").reason == "binary"


@pytest.mark.parametrize("name", ["a.magnet", "a.url", "a.json"])
def test_invalid_utf8(name: str) -> None:
    assert rejected(name, M1.encode() + b"\xff\xfe\xc3").reason == "invalid_utf8"


def test_extension_case_insensitive() -> None:
    assert parse_item("Show.MAGNET", M1.encode()).kind == "magnet"


# -- .magnet ---------------------------------------------------------------------------


def test_sonarr_single_magnet_without_newline() -> None:
    item = parse_item("Show.magnet", M1.encode())
    assert item.kind == "magnet"
    assert item.rejects == ()
    assert item.options == AddOptions()
    (entry,) = item.entries
    assert (entry.line, entry.torrent_id, entry.text, entry.name) == (1, H1, M1, "One")
    assert entry.magnet is not None and entry.magnet.uri == M1


def test_crlf_bom_comments_and_bare_hash() -> None:
    text = f"# my list\r\n\r\n  {M1}  \r\n#{M2}\r\n{H2.upper()}\r\n"
    item = parse_item("a.magnet", codecs.BOM_UTF8 + text.encode())
    assert [(e.line, e.torrent_id, e.text) for e in item.entries] == [
        (3, H1, M1),
        (5, H2, H2.upper()),
    ]
    assert item.rejects == ()


def test_lone_cr_newlines() -> None:
    item = parse_item("a.magnet", f"{M1}\r{M2}".encode())
    assert [e.line for e in item.entries] == [1, 2]


def test_some_bad_lines() -> None:
    text = f"{M1}\nftp://example.com\n\n{M2}\nmagnet:?dn=x\n{H1[:-1]}\n"
    item = parse_item("a.magnet", text.encode())
    assert [e.line for e in item.entries] == [1, 4]
    assert [(r.line, r.reason, r.text) for r in item.rejects] == [
        (2, "not_magnet", "ftp://example.com"),
        (5, "missing_xt", "magnet:?dn=x"),
        (6, "bad_hash", H1[:-1]),
    ]


def test_single_bad_line_gives_its_reason() -> None:
    exc = rejected("a.magnet", b"ftp://example.com\n")
    assert exc.reason == "not_magnet"
    assert exc.lines == (LineError(1, "not_magnet", exc.detail, "ftp://example.com"),)


def test_all_bad_lines_no_magnet() -> None:
    exc = rejected("a.magnet", b"# c\nfile:///a\n\nmagnet:?dn=x\n")
    assert exc.reason == "no_magnet"
    assert [(e.line, e.reason) for e in exc.lines] == [(2, "not_magnet"), (4, "missing_xt")]


def test_only_comments_no_magnet() -> None:
    exc = rejected("a.magnet", b"# nothing here\n\n#  still nothing\n")
    assert exc.reason == "no_magnet"
    assert exc.lines == ()


def test_control_chars_line() -> None:
    exc = rejected("a.magnet", f"{M1}\x07".encode())
    assert exc.reason == "control_chars"


def test_line_too_long_line() -> None:
    item = parse_item("a.magnet", f"{M1}\n{M2}&dn={'a' * 70000}\n".encode())
    assert [(r.line, r.reason) for r in item.rejects] == [(2, "line_too_long")]


def test_too_many_magnets() -> None:
    data = (H1 + "\n").encode() * (MAX_ENTRIES + 1)
    assert rejected("a.magnet", data).reason == "too_many_magnets"


# -- .url ------------------------------------------------------------------------------


def test_url_shortcut() -> None:
    item = parse_item("a.url", shortcut(M1).encode())
    assert item.kind == "url"
    (entry,) = item.entries
    assert (entry.line, entry.torrent_id, entry.text) == (5, H1, M1)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-8-sig"])
def test_url_boms(encoding: str) -> None:
    data = shortcut(M1, "\n").encode(encoding)
    if encoding == "utf-16-le":
        data = codecs.BOM_UTF16_LE + data
    elif encoding == "utf-16-be":
        data = codecs.BOM_UTF16_BE + data
    assert parse_item("a.url", data).entries[0].torrent_id == H1


def test_url_case_insensitive_section_and_key() -> None:
    data = f"[internetshortcut]\nurl = {M1}\n".encode()
    assert parse_item("a.url", data).entries[0].torrent_id == H1


@pytest.mark.parametrize(
    "text",
    [
        "[Other]\nURL=" + M1,
        "URL=" + M1,
        "[InternetShortcut]\nIconIndex=0\n",
        "[InternetShortcut]\nURL=\n",
    ],
)
def test_bad_shortcut(text: str) -> None:
    assert rejected("a.url", text.encode()).reason == "bad_shortcut"


def test_url_not_magnet() -> None:
    exc = rejected("a.url", shortcut("ftp://example.com/" + "x" * 5000).encode())
    assert exc.reason == "not_magnet"
    assert "ftp" in exc.detail
    assert len(exc.detail) <= 200
    assert exc.lines[0].line == 5


def test_url_bad_utf16() -> None:
    assert rejected("a.url", codecs.BOM_UTF16_LE + b"[\x00I").reason == "invalid_utf8"


# -- .json -----------------------------------------------------------------------------


def test_json_workflow_format() -> None:
    queue = {
        "saved_at": "2026-11-01T10:00:00Z",
        "reason": "x",
        "magnets": [M1, H2, 7, "ftp://example.com"],
        "instructions": "...",
        "category": "tv",
        "savepath": "/data/tv",
        "tags": ["a", "b"],
        "paused": True,
    }
    item = parse_item("q.json", json.dumps(queue).encode())
    assert item.kind == "json"
    assert item.options == AddOptions("tv", "/data/tv", ("a", "b"), True)
    assert [(e.line, e.torrent_id, e.text) for e in item.entries] == [(1, H1, M1), (2, H2, H2)]
    assert [(r.line, r.reason, r.text) for r in item.rejects] == [
        (3, "not_a_string", "7"),
        (4, "not_magnet", "ftp://example.com"),
    ]


def test_json_tags_string_and_unset_options() -> None:
    item = parse_item("q.json", json.dumps({"magnets": [M1], "tags": "a, b,,c"}).encode())
    assert item.options == AddOptions(tags=("a", "b", "c"))


def test_json_bare_list() -> None:
    item = parse_item("q.json", codecs.BOM_UTF8 + json.dumps([M1, M2]).encode())
    assert [e.torrent_id for e in item.entries] == [H1, H2]
    assert item.options == AddOptions()


def test_json_not_a_string_only() -> None:
    exc = rejected("q.json", b'{"magnets": [{"a": 1}]}')
    assert exc.reason == "not_a_string"
    assert exc.lines == (LineError(1, "not_a_string", exc.detail, '{"a": 1}'),)


def test_json_no_magnet() -> None:
    assert rejected("q.json", b'{"magnets": []}').reason == "no_magnet"
    exc = rejected("q.json", b'["ftp://a", null]')
    assert exc.reason == "no_magnet"
    assert [(e.line, e.text) for e in exc.lines] == [(1, "ftp://a"), (2, "null")]


@pytest.mark.parametrize("text", ["{", "[1,]", "magnets", '{"magnets": [1e99999999999]}x'])
def test_bad_json(text: str) -> None:
    assert rejected("q.json", text.encode()).reason == "bad_json"


@pytest.mark.parametrize(
    "text",
    ['{"magnets": "x"}', "5", "null", '"magnet:?x"', '{"other": []}', '{"magnets": {}}'],
)
def test_bad_shape(text: str) -> None:
    assert rejected("q.json", text.encode()).reason == "bad_shape"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("category", 1),
        ("savepath", []),
        ("tags", [1]),
        ("tags", 5),
        ("paused", "yes"),
        ("paused", 1),
    ],
)
def test_bad_option_types(key: str, value: Any) -> None:
    exc = rejected("q.json", json.dumps({"magnets": [M1], key: value}).encode())
    assert exc.reason == "bad_shape"
    assert key in exc.detail


def test_json_nesting_limit() -> None:
    deep = "[" * 33 + "]" * 33
    assert rejected("q.json", deep.encode()).reason == "bad_json"
    ok = '{"magnets": ["' + M1 + '"], "x": ' + "[" * 30 + "]" * 30 + "}"
    assert parse_item("q.json", ok.encode()).entries[0].torrent_id == H1


def test_json_nesting_bomb() -> None:
    assert rejected("q.json", b"[" * 1_000_000).reason == "bad_json"
    assert rejected("q.json", b'{"a":' * 100_000).reason == "bad_json"


def test_json_brackets_in_strings_do_not_count() -> None:
    text = json.dumps({"magnets": [M1], "note": "[[[[" * 50 + '"\\'})
    assert parse_item("q.json", text.encode()).entries[0].torrent_id == H1


def test_json_too_many() -> None:
    data = json.dumps([H1] * (MAX_ENTRIES + 1)).encode()
    assert rejected("q.json", data).reason == "too_many_magnets"


# -- .torrent --------------------------------------------------------------------------


def test_v1_torrent() -> None:
    data = torrent(V1_INFO)
    item = parse_item("a.torrent", data)
    (entry,) = item.entries
    assert item.kind == "torrent"
    assert entry.torrent_id == hashlib.sha1(bencode(V1_INFO)).hexdigest()
    assert (entry.line, entry.text, entry.torrent, entry.name) == (
        1,
        "",
        data,
        "Some.Show.S01E01.mkv",
    )


def test_v2_torrent() -> None:
    info = {b"name": b"\xffbad", b"meta version": 2, b"piece length": 16384, b"file tree": {}}
    (entry,) = parse_item("a.torrent", torrent(info)).entries
    assert entry.torrent_id == hashlib.sha256(bencode(info)).hexdigest()[:40]
    assert entry.name == "\ufffdbad"


def test_non_canonical_torrent() -> None:
    data = b"d4:infod6:lengthi1e4:name1:a12:piece lengthi16384e6:pieces0:ee"
    assert parse_item("a.torrent", data).entries[0].name == "a"
    swapped = b"d4:infod4:name1:a6:lengthi1e12:piece lengthi16384e6:pieces0:ee"
    assert rejected("a.torrent", swapped).reason == "bad_torrent"


def test_non_canonical_info_seen_by_a_lenient_decoder(monkeypatch: pytest.MonkeyPatch) -> None:
    swapped = b"d4:infod4:name1:a6:lengthi1ee"
    monkeypatch.setattr(items, "bdecode", lambda _: {b"info": {b"name": b"a", b"length": 1}})
    exc = rejected("a.torrent", swapped)
    assert exc.reason == "bad_torrent"
    assert "canonical" in exc.detail


def test_torrent_without_name() -> None:
    assert parse_item("a.torrent", b"d4:infodee").entries[0].name is None


@pytest.mark.parametrize(
    "data", [b"hello", b"i1e", b"le", b"d4:infoi1ee", b"d3:fooi1ee", b"d4:infode", b"\x00\x01"]
)
def test_bad_torrent(data: bytes) -> None:
    assert rejected("a.torrent", data).reason == "bad_torrent"


# -- render ----------------------------------------------------------------------------


def test_render_magnet() -> None:
    data = f"# c\r\n{M1}\r\nhttp://x\r\n  {M2}  ".encode()
    item = parse_item("a.magnet", data)
    assert render(item, "a.magnet", data, [4, 3]) == f"http://x\n{M2}\n".encode()
    assert render(item, "a.magnet", data, []) == b""
    again = parse_item("a.magnet", render(item, "a.magnet", data, {2}))
    assert [e.torrent_id for e in again.entries] == [H1]


def test_render_json_object() -> None:
    queue = {"saved_at": "t", "magnets": [M1, 7, M2], "category": "tv", "note": "é"}
    data = json.dumps(queue).encode()
    item = parse_item("q.json", data)
    out = render(item, "q.json", data, [2, 3])
    assert json.loads(out) == {**queue, "magnets": [7, M2]}
    assert "é" in out.decode("utf-8")
    assert out.startswith(b'{\n  "saved_at"')


def test_render_json_list() -> None:
    data = json.dumps([M1, {"x": 1}, M2]).encode()
    item = parse_item("q.json", data)
    assert json.loads(render(item, "q.json", data, [2])) == [{"x": 1}]


def test_render_json_lone_surrogate() -> None:
    data = b'["\\ud800", "' + M1.encode() + b'"]'
    item = parse_item("q.json", data)
    assert item.rejects[0].reason == "invalid_utf8"
    assert json.loads(render(item, "q.json", data, [1])) == ["\ud800"]


@pytest.mark.parametrize("name", ["a.url", "a.torrent"])
def test_render_unchanged(name: str) -> None:
    data = shortcut(M1).encode() if name == "a.url" else torrent(V1_INFO)
    assert render(parse_item(name, data), name, data, [1]) == data


# -- properties ------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.sampled_from([M1, H2]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=10,
)
TEXTS = st.lists(st.sampled_from([M1, H2, "#c", "", "[InternetShortcut]", "URL=" + M1, "\r"]))


def data_strategy() -> st.SearchStrategy[bytes]:
    """Bytes that are sometimes close to a valid file of some kind."""
    return st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
        TEXTS.map(lambda lines: "\n".join(lines).encode()),
        JSON_VALUES.map(lambda v: json.dumps(v).encode()),
        st.dictionaries(st.sampled_from(["magnets", "tags", "paused"]), JSON_VALUES).map(
            lambda v: json.dumps(v).encode()
        ),
        st.binary(max_size=20).map(lambda b: torrent({**V1_INFO, b"name": b})),
    )


@given(st.sampled_from(KINDS), data_strategy())
def test_parse_item_any_bytes(name: str, data: bytes) -> None:
    try:
        item = parse_item(name, data)
    except Rejected as exc:
        assert exc.reason
    else:
        assert isinstance(item, Item)
        assert item.entries
        assert all(isinstance(e, Entry) for e in item.entries)
        # a magnet or a torrent has its id; a link to fetch has none until it is fetched
        assert all(
            len(e.torrent_id) == 40 if e.link is None else e.torrent_id == "" and is_link(e.link)
            for e in item.entries
        )
        lines = [e.line for e in item.entries]
        assert isinstance(render(item, name, data, lines), bytes)


def test_files_without_options_of_their_own_share_one_options_record() -> None:
    first = items.parse_item("a.magnet", b"magnet:?xt=urn:btih:" + b"a" * 40)
    second = items.parse_item("b.json", b'["' + b"b" * 40 + b'"]')
    assert first.options is second.options is NO_OPTIONS


# -- the usual .magnet file's fast path makes what the general parser makes ------------------

PRINTABLE = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
VALUE = st.text(alphabet=PRINTABLE | st.sampled_from("%+&= \t#\u00e9"), max_size=30)
PLAIN_PIECE = PRINTABLE.filter(lambda c: c != "&") | st.sampled_from(["%20", "%C3%A9", "%ff", "%", "+"])
PLAIN_VALUE = st.lists(PLAIN_PIECE, max_size=30).map("".join)
HEX_ID = st.text(alphabet="0123456789abcdefABCDEF", min_size=40, max_size=40)
ENDS = st.sampled_from(["", "\n", "\r\n", "\r", "\n\n", " \n", "\n#c\n", "\t"])


@st.composite
def plain_magnet_files(draw: st.DrawFn) -> bytes:
    """The usual shape: xt, maybe dn, any trackers, one line."""
    text = "magnet:?xt=urn:btih:" + draw(HEX_ID)
    if draw(st.booleans()):
        text += "&dn=" + draw(PLAIN_VALUE)
    for tracker in draw(st.lists(PLAIN_VALUE, max_size=3)):
        text += "&tr=" + tracker
    return (text + draw(st.sampled_from(["", "\n", "\r\n", "\r"]))).encode()


@st.composite
def near_plain_magnet_files(draw: st.DrawFn) -> bytes:
    """The usual shape with one thing changed: another key, case, xt form, character or line."""
    head, xt, hex_id, end = "magnet:?", "urn:btih:", draw(HEX_ID), draw(st.sampled_from(["", "\n"]))
    params = [("dn", draw(PLAIN_VALUE))] if draw(st.booleans()) else []
    params += [("tr", v) for v in draw(st.lists(PLAIN_VALUE, max_size=2))]
    change = draw(st.integers(0, 4))
    if change == 0:  # one more parameter, anywhere
        key = draw(st.sampled_from(["dn", "tr", "xt", "xt.1", "XT", "Dn", "%64n", "x.pe", "", "dn "]))
        params.insert(draw(st.integers(0, len(params))), (key, draw(PLAIN_VALUE | VALUE)))
    elif change == 1:
        head = draw(st.sampled_from(["MAGNET:?", " magnet:?", "\ufeffmagnet:?", "magnet:", "magnet:?&"]))
    elif change == 2:
        xt = draw(st.sampled_from(["urn:BTIH:", "urn:btmh:1220", "urn:btih:x", "urn:sha1:"]))
        hex_id = draw(HEX_ID | st.text(alphabet="0123456789abcdefABCDEF", max_size=66))
    elif change == 3:
        end = draw(ENDS | st.just("\nmagnet:?xt=urn:btih:" + "a" * 40))
    else:  # a character a plain value never has
        params.append(("tr", draw(PLAIN_VALUE) + draw(st.sampled_from(" \t\x00\x7f\u00e9#\u2028"))))
    text = head + "xt=" + xt + hex_id + "".join(f"&{key}={value}" for key, value in params)
    return (text + end).encode()


def _general(data: bytes) -> Item | Rejected:
    try:
        return items._parse_magnet_lines(data)
    except Rejected as exc:
        return exc


@given(plain_magnet_files())
def test_the_usual_magnet_file_takes_the_fast_path_and_gets_the_general_parsers_item(data: bytes) -> None:
    fast = items._plain_magnet_file(data)
    assert fast is not None
    assert fast == _general(data)
    assert parse_item("x.magnet", data) == fast


@given(near_plain_magnet_files() | st.binary(max_size=200) | plain_magnet_files().map(lambda d: d[:-3]))
def test_the_fast_path_takes_a_file_only_when_it_makes_the_general_parsers_item(data: bytes) -> None:
    fast = items._plain_magnet_file(data)
    if fast is not None:
        assert fast == _general(data)


def test_the_fast_path_leaves_an_over_long_magnet_to_the_general_parser() -> None:
    data = b"magnet:?xt=urn:btih:" + b"a" * 40 + b"&tr=" + b"x" * MAX_LINE_CHARS
    assert items._plain_magnet_file(data) is None
    with pytest.raises(Rejected) as caught:
        parse_item("x.magnet", data)
    assert caught.value.reason == "line_too_long"


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("a.magnet", FileKind.MAGNET),
        ("A.MAGNET", FileKind.MAGNET),
        ("x.y.Url", FileKind.URL),
        ("queue.json", FileKind.JSON),
        (".torrent", FileKind.TORRENT),
        ("magnet", None),
        ("a.txt", None),
        ("a.magnet.part", None),
        ("a.", None),
    ],
)
def test_a_files_kind_is_its_extension_in_any_case(name: str, kind: FileKind | None) -> None:
    assert FileKind.of(name) is kind
