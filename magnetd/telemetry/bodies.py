"""The bodies of ``POST /api/add`` and ``POST /api/retry``: checked before anything is written.

Pure: bytes in, a value or :class:`BadBody` out. An add body is checked with
the same parser the daemon reads inbox files with, so a body that passes is a
file the daemon can send; a body with any bad entry is refused whole, with the
per-line reasons, and nothing is written.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

from magnetd.intake.items import parse_item
from magnetd.model import FileKind, LineError, Rejected

MAX_BODY = 1024 * 1024
"""The largest request body accepted (1 MiB); larger ones get 413 unread."""
MAX_NAME = 4096

_JSON_TYPES = frozenset({"application/json", "text/json"})
_TORRENT_TYPES = frozenset({"application/x-bittorrent"})


class BadBody(ValueError):
    """A body that cannot be accepted: a reason code, a human detail, and the bad lines if any."""

    def __init__(self, reason: str, detail: str, lines: Sequence[LineError] = ()) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.lines = tuple(lines)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.reason, "detail": self.detail}
        if self.lines:
            body["lines"] = [{"line": e.line, "reason": e.reason, "detail": e.detail} for e in self.lines]
        return body


def media_type(content_type: str) -> str:
    """``application/json; charset=utf-8`` → ``application/json``."""
    return content_type.split(";", 1)[0].strip().lower()


def add_kind(data: bytes, content_type: str) -> FileKind:
    """What kind of inbox file an add body becomes: JSON, a ``.torrent``, or magnet lines."""
    media = media_type(content_type)
    if media in _JSON_TYPES:
        return FileKind.JSON
    if media in _TORRENT_TYPES:
        return FileKind.TORRENT
    return FileKind.JSON if data.lstrip()[:1] in (b"{", b"[") else FileKind.MAGNET


def check_add(data: bytes, content_type: str) -> FileKind:
    """The kind of file ``data`` makes, or :class:`BadBody` if any of it could not be sent."""
    if not data.strip():
        raise BadBody("empty", "the body holds no magnet")
    kind = add_kind(data, content_type)
    try:
        item = parse_item("request" + kind.suffix, data)
    except Rejected as exc:
        raise BadBody(exc.reason, exc.detail, exc.lines) from None
    if item.rejects:
        raise BadBody("invalid_entries", f"{len(item.rejects)} entries cannot be sent", item.rejects)
    return kind


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name or len(name) > MAX_NAME:
        raise BadBody("bad_name", "each file is a non-empty string")
    if any(ord(c) < 32 for c in name) or "\\" in name:
        raise BadBody("bad_name", "a file name has control characters or a backslash")
    path = PurePosixPath(name)
    drive = len(name) > 1 and name[1] == ":"  # C:x on Windows
    if path.is_absolute() or drive or not path.parts or ".." in path.parts:
        raise BadBody("bad_name", "files are named relative to failed/, without '..'")
    return name


def retry_names(data: bytes) -> list[str]:
    """The files a retry body names (relative to ``failed/``); empty means every failed file."""
    if not data.strip():
        return []
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        raise BadBody("bad_json", 'the body is not JSON: send {"files": [NAME, ...]}') from None
    files = value.get("files", []) if isinstance(value, dict) else value
    if not isinstance(files, list):
        raise BadBody("bad_shape", 'send {"files": [NAME, ...]} or a JSON list of names')
    return [_check_name(name) for name in files]
