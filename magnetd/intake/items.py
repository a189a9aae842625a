"""Turn a dropped file's name and bytes into an :class:`~magnetd.model.Item`, and back.

Pure: no file system access, no logging. Whole-file problems raise
:class:`~magnetd.model.Rejected`; bad entries inside a good file become
:class:`~magnetd.model.LineError` values in ``Item.rejects``.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import re
from collections.abc import Callable, Collection, Iterator
from typing import Any

from fastbencode import bdecode, bencode

from magnetd.intake import options
from magnetd.intake.links import is_link, link_error
from magnetd.intake.magnet import MAX_LINE_CHARS, decode_param, parse_link, parse_magnet, snippet
from magnetd.model import NO_OPTIONS, AddOptions, Entry, FileKind, Item, LineError, Magnet, Rejected

MAX_ENTRIES = 100_000
"""The most entries (non-blank, non-comment lines or list elements) one file may hold: ten
times the largest backlog a workflow was seen to write, and small enough that parsing one
file stays well under a second."""

MAX_JSON_DEPTH = 32
"""The deepest nesting of JSON arrays/objects accepted: a queue file needs 3; the limit keeps
a hostile file far from Python's recursion limit."""


_NEWLINE = re.compile(r"\r\n|\r|\n")
_JSON_TOKEN = re.compile(r'"(?:[^"\\]++|\\.)*+(?:"|\Z)|[\[\]{}]', re.DOTALL)
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_NOT_CANONICAL = "info dictionary is not canonically encoded; qBittorrent would list it under another hash"


def _decode(data: bytes, utf16: bool = False) -> str:
    """``data`` as text (UTF-8 with optional BOM, or UTF-16 with BOM if allowed), checked."""
    if utf16 and data.startswith(_UTF16_BOMS):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise Rejected("invalid_utf8", f"not valid UTF-16: {exc.reason}") from None
        if "\x00" in text:
            raise Rejected("binary", "file holds a NUL character")
    else:
        if b"\x00" in data:
            raise Rejected("binary", "file holds a NUL byte")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise Rejected("invalid_utf8", f"not valid UTF-8 at byte {exc.start}") from None
    if not text.strip():
        raise Rejected("empty", "file is empty")
    return text


def _check_count(count: int) -> None:
    """Rejected ``too_many_magnets`` if ``count`` is over MAX_ENTRIES."""
    if count > MAX_ENTRIES:
        raise Rejected("too_many_magnets", f"{count} entries, over {MAX_ENTRIES}")


def _nothing_good(errors: list[LineError], what: str) -> Rejected:
    """The Rejected for a file with no good entry: a lone bad entry's reason, else no_magnet."""
    if len(errors) == 1:
        only = errors[0]
        return Rejected(only.reason, only.detail, lines=errors)
    if not errors:
        return Rejected("no_magnet", f"no magnet links: {what}")
    return Rejected("no_magnet", f"none of the {len(errors)} entries is valid", lines=errors)


def _link_entry(line: int, text: str) -> Entry | LineError:
    """An Entry for a link, or a LineError saying why it is bad."""
    if is_link(text):
        return _fetch_entry(line, text)
    try:
        magnet = parse_link(text)
    except Rejected as exc:
        return LineError(line=line, reason=exc.reason, detail=exc.detail, text=text)
    return _magnet_entry(line, text, magnet)


def _fetch_entry(line: int, text: str) -> Entry | LineError:
    """An Entry for an ``http(s)://`` link to fetch, or a LineError (too long, control characters)."""
    problem = link_error(text)
    if problem is not None:
        return LineError(line=line, reason=problem.reason, detail=problem.detail, text=text)
    return Entry(line=line, torrent_id="", text=text, link=text.strip())


def _magnet_entry(line: int, text: str, magnet: Magnet) -> Entry:
    """An Entry for a parsed magnet."""
    return Entry(line=line, torrent_id=magnet.torrent_id, text=text, magnet=magnet, name=magnet.name)


def _build(kind: FileKind, results: list[Entry | LineError], what: str, options: AddOptions) -> Item:
    """An Item from per-entry results, or Rejected if none is good."""
    entries = tuple(r for r in results if isinstance(r, Entry))
    errors = [r for r in results if isinstance(r, LineError)]
    if not entries:
        raise _nothing_good(errors, what)
    links = sum(1 for e in entries if e.link is not None)
    return Item(kind=kind, entries=entries, rejects=tuple(errors), options=options, links=links)


def _magnet_lines(text: str) -> Iterator[tuple[int, str]]:
    """The (1-based number, stripped text) of every line that is not blank or a comment."""
    for number, raw in enumerate(_NEWLINE.split(text), start=1):
        line = raw.strip()
        if line and not line.startswith("#"):
            yield number, line


def _parse_magnet_file(data: bytes) -> Item:
    """A ``.magnet`` file: one magnet URI or bare hash per line."""
    return _plain_magnet_file(data) or _parse_magnet_lines(data)


_PLAIN_CHAR = rb"[!-%'-~]"  # printable ASCII but "&": no space, control character or other text
_PLAIN_MAGNET_FILE = re.compile(
    rb"(magnet:\?xt=urn:btih:([0-9a-fA-F]{40})(?:&dn=("
    + _PLAIN_CHAR
    + rb"*))?(?:&tr="
    + _PLAIN_CHAR
    + rb"*)*)"
    rb"(?:\r\n|\r|\n)?"
)


def _plain_magnet_file(data: bytes) -> Item | None:
    """The usual ``.magnet`` file, in a third of the general parser's time; None for any other.

    Usual: a single ``magnet:?xt=urn:btih:<40 hex>`` line, then at most one ``dn`` and
    any number of ``tr``, in printable ASCII, under MAX_LINE_CHARS. What is made is what
    :func:`_parse_magnet_lines` makes of it (a property test holds them equal).
    """
    if len(data) > MAX_LINE_CHARS:
        return None
    match = _PLAIN_MAGNET_FILE.fullmatch(data)
    if match is None:
        return None
    link, torrent_id = match[1].decode("ascii"), match[2].decode("ascii").lower()
    name = (decode_param(match[3].decode("ascii")) or None) if match[3] else None
    magnet = Magnet(uri=link, torrent_id=torrent_id, name=name)
    return Item(kind=FileKind.MAGNET, entries=(_magnet_entry(1, link, magnet),))


def _parse_magnet_lines(data: bytes) -> Item:
    """A ``.magnet`` file of any shape: each line a magnet URI, a bare hash or a link to fetch."""
    lines = list(_magnet_lines(_decode(data)))
    _check_count(len(lines))
    results = [_link_entry(number, line) for number, line in lines]
    return _build(FileKind.MAGNET, results, "only blank lines and comments", NO_OPTIONS)


def _shortcut_url(text: str) -> tuple[int, str]:
    """The line number and value of ``URL=`` in section ``[InternetShortcut]``."""
    section = ""
    for number, raw in enumerate(_NEWLINE.split(text), start=1):
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip().lower()
        elif section == "internetshortcut" and "=" in line:
            key, _, value = line.partition("=")
            if key.strip().lower() == "url":
                return number, value.strip()
    raise Rejected("bad_shortcut", "no URL= key in an [InternetShortcut] section")


def _parse_url_file(data: bytes) -> Item:
    """A ``.url`` Windows Internet Shortcut whose URL is a magnet link."""
    number, value = _shortcut_url(_decode(data, utf16=True))
    if not value:
        raise Rejected("bad_shortcut", "the URL= key is empty")
    if is_link(value):
        return _build(FileKind.URL, [_fetch_entry(number, value)], "", NO_OPTIONS)
    try:
        magnet = parse_magnet(value)
    except Rejected as exc:
        error = LineError(line=number, reason=exc.reason, detail=exc.detail, text=value)
        raise Rejected(exc.reason, exc.detail, lines=[error]) from None
    return Item(kind=FileKind.URL, entries=(_magnet_entry(number, value, magnet),))


def _check_depth(text: str) -> None:
    """Rejected ``bad_json`` if arrays/objects nest deeper than MAX_JSON_DEPTH."""
    depth = 0
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise Rejected("bad_json", f"nested deeper than {MAX_JSON_DEPTH} levels")
        elif token in ("]", "}"):
            depth -= 1


def _load_json(data: bytes) -> Any:
    """The JSON value in ``data``, else Rejected."""
    text = _decode(data)
    _check_depth(text)
    try:
        return json.loads(text)
    except RecursionError:
        raise Rejected("bad_json", "nested too deeply") from None
    except ValueError as exc:
        raise Rejected("bad_json", f"invalid JSON: {str(exc)[:200]}") from None


def _magnet_list(value: Any) -> list[Any]:
    """The list of magnets of a queue file: a bare list or an object's ``magnets``."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and isinstance(value.get("magnets"), list):
        return list(value["magnets"])
    raise Rejected("bad_shape", "expected a list or an object with a 'magnets' list")


def _json_options(value: Any) -> AddOptions:
    """The add options of a queue file (all unset for a bare list)."""
    if not isinstance(value, dict):
        return NO_OPTIONS
    return options.from_queue_file(value)


def _json_entry(line: int, element: Any) -> Entry | LineError:
    """An Entry for one element of the magnets list, or a LineError."""
    if not isinstance(element, str):
        text = json.dumps(element, ensure_ascii=False)
        kind = type(element).__name__
        return LineError(line=line, reason="not_a_string", detail=f"a {kind}", text=text)
    try:
        element.encode("utf-8")
    except UnicodeEncodeError:
        return LineError(line, "invalid_utf8", "string holds a lone surrogate", element)
    return _link_entry(line, element)


def _parse_json_file(data: bytes) -> Item:
    """A ``.json`` queue file: a list of magnets, bare or in an object with options."""
    value = _load_json(data)
    magnets = _magnet_list(value)
    options = _json_options(value)
    _check_count(len(magnets))
    results = [_json_entry(n, element) for n, element in enumerate(magnets, start=1)]
    return _build(FileKind.JSON, results, "the magnets list is empty", options)


def _torrent_info(data: bytes) -> dict[bytes, Any]:
    """The decoded ``info`` dictionary of a torrent file, else Rejected ``bad_torrent``."""
    try:
        meta = bdecode(data)
    except Exception as exc:  # any decode failure means the file is not a torrent
        raise Rejected("bad_torrent", f"not a valid bencoded file: {str(exc)[:200]}") from None
    info = meta.get(b"info") if isinstance(meta, dict) else None
    if not isinstance(info, dict):
        raise Rejected("bad_torrent", "no info dictionary")
    return info


def _info_bytes(data: bytes, info: dict[bytes, Any]) -> bytes:
    """The info dictionary's bytes as they stand in ``data``, else Rejected."""
    encoded: bytes = bencode(info)
    if b"4:info" + encoded not in data:
        raise Rejected("bad_torrent", _NOT_CANONICAL)
    return encoded


def _parse_torrent_file(data: bytes) -> Item:
    """A ``.torrent`` file, identified by the id qBittorrent lists it under."""
    if not data.strip():
        raise Rejected("empty", "file is empty")
    info = _torrent_info(data)
    raw = _info_bytes(data, info)
    version = info.get(b"meta version")
    if isinstance(version, int) and version == 2:
        torrent_id = hashlib.sha256(raw).hexdigest()[:40]
    else:
        torrent_id = hashlib.sha1(raw).hexdigest()
    name = info.get(b"name")
    title = name.decode("utf-8", errors="replace") if isinstance(name, bytes) else None
    entry = Entry(line=1, torrent_id=torrent_id, text="", torrent=data, name=title)
    return Item(kind=FileKind.TORRENT, entries=(entry,))


_PARSERS: dict[FileKind, Callable[[bytes], Item]] = {
    FileKind.MAGNET: _parse_magnet_file,
    FileKind.URL: _parse_url_file,
    FileKind.JSON: _parse_json_file,
    FileKind.TORRENT: _parse_torrent_file,
}


def parse_item(name: str, data: bytes) -> Item:
    """What the dropped file ``name`` holding ``data`` asks for, else Rejected."""
    kind = FileKind.of(name)
    if kind is None:
        raise Rejected("unsupported_kind", f"unsupported file type: {snippet(name)}")
    if not data:
        raise Rejected("empty", "file is empty")
    return _PARSERS[kind](data)


def _render_magnet(item: Item, lines: Collection[int]) -> bytes:
    """The chosen lines of a ``.magnet`` file, one per line."""
    rows: list[Entry | LineError] = [*item.entries, *item.rejects]
    chosen = sorted((row.line, row.text) for row in rows if row.line in lines)
    if not chosen:
        return b""
    return ("\n".join(text for _, text in chosen) + "\n").encode("utf-8")


def _render_json(data: bytes, lines: Collection[int]) -> bytes:
    """The queue file with only the chosen elements of its magnets list."""
    value = _load_json(data)
    magnets = _magnet_list(value)
    chosen = [element for n, element in enumerate(magnets, start=1) if n in lines]
    out: Any = {**value, "magnets": chosen} if isinstance(value, dict) else chosen
    try:
        return (json.dumps(out, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: keep them as JSON escapes
        return (json.dumps(out, indent=2) + "\n").encode("utf-8")


def renders_from_bytes(item: Item) -> bool:
    """Whether :func:`render` needs the file's bytes for ``item`` (a queue file's JSON), or only
    the parsed item (a ``.magnet`` file's lines): the bytes of others need not be kept."""
    return item.kind == FileKind.JSON


def render(item: Item, name: str, data: bytes, lines: Collection[int]) -> bytes:
    """The file ``name`` rewritten to hold only the entries/rejects whose line is in ``lines``."""
    wanted = frozenset(lines)
    if item.kind == FileKind.MAGNET:
        return _render_magnet(item, wanted)
    if item.kind == FileKind.JSON:
        return _render_json(data, wanted)
    return data
