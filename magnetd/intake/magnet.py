"""Parse magnet URIs and bare infohashes into :class:`~magnetd.model.Magnet` values.

Everything here is pure: no I/O, no logging. Bad input raises
:class:`~magnetd.model.Rejected` with one of these reason codes:
``not_magnet``, ``missing_xt``, ``bad_hash``, ``line_too_long``, ``control_chars``.
"""

from __future__ import annotations

import base64
import re
from urllib.parse import unquote

from magnetd.model import Magnet, Rejected

MAX_LINE_CHARS = 65536  # real magnets with many trackers stay under 8 KiB; this refuses garbage early
"""The longest link accepted, in characters (after stripping surrounding whitespace)."""

_HEX40 = re.compile(r"[0-9a-fA-F]{40}")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_BASE32 = re.compile(r"[A-Za-z2-7]{32}")
_HEXISH = re.compile(r"[0-9a-fA-F]{16,128}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]{0,31}):")
_XT_KEY = re.compile(r"xt(?:\.[0-9]{1,9})?")
_BTIH = "urn:btih:"
_BTMH = "urn:btmh:"
_SHA256_PREFIX = "1220"
_SNIPPET = 60


def snippet(text: str, limit: int = _SNIPPET) -> str:
    """``text`` quoted for a message, cut to ``limit`` characters (never more than 200)."""
    limit = min(limit, 200)
    cut = text if len(text) <= limit else text[: limit - 3] + "..."
    return repr(cut)


def _v1_magnet(hex_id: str) -> Magnet:
    """A magnet for a v1 infohash given as 40 hex digits."""
    hex_id = hex_id.lower()
    return Magnet(uri=f"magnet:?xt=urn:btih:{hex_id}", torrent_id=hex_id)


def _v2_magnet(hex_digest: str) -> Magnet:
    """A magnet for a v2 infohash given as the 64 hex digits of its SHA-256 digest."""
    hex_digest = hex_digest.lower()
    uri = f"magnet:?xt=urn:btmh:{_SHA256_PREFIX}{hex_digest}"
    return Magnet(uri=uri, torrent_id=hex_digest[:40])


def base32_to_hex(text: str) -> str:
    """The lower-case hex of a 32-character RFC 4648 base32 infohash (any case)."""
    return base64.b32decode(text.upper()).hex()


def parse_hash(text: str) -> Magnet | None:
    """A bare infohash (40 hex, 32 base32 or 64 hex) as a Magnet, or None if not hash-shaped."""
    value = text.strip()
    if _HEX40.fullmatch(value):
        return _v1_magnet(value)
    if _BASE32.fullmatch(value):
        return _v1_magnet(base32_to_hex(value))
    if _HEX64.fullmatch(value):
        return _v2_magnet(value)
    return None


def _btih_hex(value: str) -> str:
    """The hex id of a ``btih`` value (40 hex or 32 base32), else Rejected ``bad_hash``."""
    if _HEX40.fullmatch(value):
        return value.lower()
    if _BASE32.fullmatch(value):
        return base32_to_hex(value)
    raise Rejected("bad_hash", f"btih is not 40 hex or 32 base32 characters: {snippet(value)}")


def _btmh_id(value: str) -> str:
    """The torrent id of a ``btmh`` value (``1220`` + 64 hex), else Rejected ``bad_hash``."""
    if not value.startswith(_SHA256_PREFIX):
        raise Rejected("bad_hash", f"btmh is not a sha2-256 multihash (1220...): {snippet(value)}")
    digest = value[len(_SHA256_PREFIX) :]
    if not _HEX64.fullmatch(digest):
        raise Rejected("bad_hash", f"btmh digest is not 64 hex characters: {snippet(value)}")
    return digest[:40].lower()


def _check_scheme(link: str) -> None:
    """Rejected ``not_magnet`` unless ``link`` starts with ``magnet:`` (any case)."""
    head = link[:7]
    if head.isascii() and head.lower() == "magnet:":
        return
    match = _SCHEME.match(link)
    if match:
        raise Rejected("not_magnet", f"scheme {snippet(match.group(1))} is not magnet:")
    raise Rejected("not_magnet", f"not a magnet link: {snippet(link)}")


def _check_text(link: str) -> None:
    """Rejected for an over-long link or one holding control characters."""
    if len(link) > MAX_LINE_CHARS:
        raise Rejected("line_too_long", f"{len(link)} characters, over {MAX_LINE_CHARS}")
    _check_scheme(link)
    bad = _CONTROL.search(link)
    if bad:
        raise Rejected("control_chars", f"control character {bad.group()!r} at {bad.start()}")


def _torrent_id(xts: list[str]) -> str:
    """The torrent id from the ``xt`` values: btmh-derived if any, else btih."""
    btih: str | None = None
    btmh: str | None = None
    for xt in xts:
        head, rest = xt[:9].lower(), xt[9:]
        if head == _BTIH:
            hex_id = _btih_hex(rest)
            btih = btih or hex_id
        elif head == _BTMH:
            tid = _btmh_id(rest)
            btmh = btmh or tid
    found = btmh or btih
    if found is None:
        raise Rejected("missing_xt", "no urn:btih or urn:btmh exact topic (xt)")
    return found


def parse_magnet(text: str) -> Magnet:
    """A ``magnet:?`` URI as a Magnet, else Rejected with the reason."""
    link = text.strip()
    _check_text(link)
    query = link[len("magnet:") :]
    if not query.startswith("?"):
        raise Rejected("missing_xt", "magnet link has no query (magnet:?...)")
    params = query_params(query[1:])
    xts = [decode_param(raw) for key, raw in params if _XT_KEY.fullmatch(key.lower())]
    if not xts:
        raise Rejected("missing_xt", "magnet link has no exact topic (xt)")
    names = [name for key, raw in params if key.lower() == "dn" and (name := decode_param(raw))]
    return Magnet(uri=link, torrent_id=_torrent_id(xts), name=names[0] if names else None)


def query_params(query: str) -> list[tuple[str, str]]:
    """``parse_qsl(query, keep_blank_values=True)``, with each value left raw (still quoted).

    Only the ``xt`` and ``dn`` values are unquoted (:func:`decode_param`), not the trackers,
    which are most of a magnet's length and of ``parse_qsl``'s time.
    """
    params = []
    for part in query.split("&"):
        if part:
            key, _, raw = part.partition("=")
            params.append((decode_param(key), raw))
    return params


def decode_param(raw: str) -> str:
    """A query string's key or value as ``parse_qsl`` decodes it (``+`` is a space)."""
    return unquote(raw.replace("+", " "))


def parse_link(text: str) -> Magnet:
    """A bare infohash or a magnet URI as a Magnet, else Rejected."""
    found = parse_hash(text)
    if found is not None:
        return found
    value = text.strip()
    if _HEXISH.fullmatch(value):
        raise Rejected("bad_hash", f"looks like a hex infohash but has {len(value)} characters")
    return parse_magnet(value)
