"""Links to ``.torrent`` files: which entries are links, how they are shown, and the limits
of fetching them.

Pure. An ``http(s)://`` entry becomes an :class:`~magnetd.model.Entry` whose ``link``
is set and whose ``torrent_id`` is empty until :mod:`magnetd.delivery.fetcher` has
fetched it. A link's query string holds API keys and passkeys, so every text meant for
a log, a status, an event or an ``.error.json`` goes through :func:`shown`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from magnetd.model import Rejected

DEFAULT_MAX_TORRENT_BYTES = 10 * 1024 * 1024
"""``limits.max_torrent_bytes``: the largest .torrent seen from indexers is a few MiB (a
season pack with thousands of pieces); ten leaves room and keeps memory flat."""
DEFAULT_FETCH_TIMEOUT = 30.0
"""``limits.fetch_timeout``: seconds a whole fetch may take, redirects included: an indexer
that proxies a tracker may take a few seconds; thirty tells slow from stuck."""
DEFAULT_FETCH_ATTEMPTS = 5
"""``limits.fetch_attempts``: tries of a link that timed out or got a 5xx before it fails;
with the back-off (2, 4, 8, 16 s) an indexer that restarts gets half a minute."""

_HTTP = re.compile(r"https?://", re.IGNORECASE)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]{0,31}://")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_LINK_CHARS = 65536
"""The longest link accepted, as for magnets (:data:`magnetd.intake.magnet.MAX_LINE_CHARS`)."""


@dataclass(frozen=True)
class FetchLimits:
    """``limits.max_torrent_bytes``, ``limits.fetch_timeout``, ``limits.fetch_attempts``."""

    max_torrent_bytes: int = DEFAULT_MAX_TORRENT_BYTES
    fetch_timeout: float = DEFAULT_FETCH_TIMEOUT
    fetch_attempts: int = DEFAULT_FETCH_ATTEMPTS


def fetch_limits(limits: Mapping[str, Any]) -> FetchLimits:
    """The fetch limits of the config's (schema-checked) ``limits`` section."""
    return FetchLimits(
        max_torrent_bytes=int(limits.get("max_torrent_bytes", DEFAULT_MAX_TORRENT_BYTES)),
        fetch_timeout=float(limits.get("fetch_timeout", DEFAULT_FETCH_TIMEOUT)),
        fetch_attempts=int(limits.get("fetch_attempts", DEFAULT_FETCH_ATTEMPTS)),
    )


def is_link(text: str) -> bool:
    """Whether ``text`` is an ``http://`` or ``https://`` URL (any case), i.e. to be fetched."""
    return _HTTP.match(text.strip()) is not None


def link_error(text: str) -> Rejected | None:
    """Why the link ``text`` can never be fetched (too long, control characters, no host), or None."""
    link = text.strip()
    if len(link) > MAX_LINK_CHARS:
        return Rejected("line_too_long", f"{len(link)} characters, over {MAX_LINK_CHARS}")
    bad = _CONTROL.search(link)
    if bad:
        return Rejected("control_chars", f"control character {bad.group()!r} at {bad.start()}")
    try:
        host = urlsplit(link).hostname
    except ValueError:
        host = None
    if not host:
        return Rejected("not_magnet", f"{shown(link)} names no host to fetch from")
    return None


def shown_text(text: str) -> str:
    """``text`` as it may be shown: any ``scheme://`` link through :func:`shown`, the rest as it is."""
    return shown(text) if _URL.match(text.strip()) else text


def shown(url: str) -> str:
    """``url`` as it may be shown anywhere: no ``user:password@``, and any query as ``?…``."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return url.split("?", 1)[0].split("@")[-1] + ("?…" if "?" in url else "")
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    query = "…" if parts.query else ""
    text = urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    return text if not parts.query or text.endswith("?…") else text + "?…"
