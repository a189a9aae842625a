"""Native journald output: each event becomes one entry with ``MAGNETD_<KEY>`` fields.

The native protocol is a datagram of ``KEY=value`` lines to
``/run/systemd/journal/socket`` (values with a newline use the length-prefixed
form). A list value becomes the same field repeated, so every infohash of a
multi-magnet file is findable with ``journalctl MAGNETD_INFOHASH=<hash>``.
An event's traceback (its ``exception`` field) becomes ``MAGNETD_TRACEBACK`` and
also follows the summary line in ``MESSAGE``, so ``journalctl -u magnetd`` shows it.
When journald is missing or refuses, the event goes to the fallback stream.
"""

from __future__ import annotations

import functools
import json
import os
import re
import socket
import struct
from collections.abc import Iterator, MutableMapping
from typing import Any, TextIO

import structlog

from magnetd import optional

_native = optional.load("systemd.journal")  # the `systemd` extra; without it, speak the protocol directly
_sendv: Any = _native.sendv if _native is not None else None

SOCKET = "/run/systemd/journal/socket"
PRIORITIES = {"debug": 7, "info": 6, "warning": 5, "warn": 5, "error": 3, "critical": 2, "exception": 3}
_BAD_CHARS = re.compile(r"[^A-Z0-9_]")
SUMMARY_KEYS = ("file", "instance", "status", "reason", "infohash", "detail", "error")
TRACEBACK_KEY = "exception"  # where structlog's format_exc_info puts the traceback
_RENAMED = {TRACEBACK_KEY: "TRACEBACK"}


@functools.lru_cache(maxsize=1024)  # event keys are few: names in the code
def field_name(key: str) -> str:
    """``MAGNETD_<KEY>``: upper case, only ``[A-Z0-9_]`` (journald drops other names)."""
    return "MAGNETD_" + _BAD_CHARS.sub("_", _RENAMED.get(key, key).upper())


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def fields(event: MutableMapping[str, Any]) -> Iterator[tuple[str, str]]:
    """The journal fields of a structlog event dict."""
    level = str(event.get("level", "info"))
    yield "MESSAGE", message(event)
    yield "PRIORITY", str(PRIORITIES.get(level, 6))
    yield "SYSLOG_IDENTIFIER", "magnetd"
    for key, value in event.items():
        if isinstance(value, str):  # most fields: checked first
            yield field_name(key), value
            continue
        if key == "infohashes" and isinstance(value, list | tuple):
            for item in value:
                yield "MAGNETD_INFOHASH", str(item)
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            for item in value:
                yield field_name(key), item
        elif value is not None:
            yield field_name(key), _value(value)


def message(event: MutableMapping[str, Any]) -> str:
    """A one-line, human summary: the event name and its key facts."""
    parts = [str(event.get("event", ""))]
    for key in SUMMARY_KEYS:
        if event.get(key) is not None:
            parts.append(f"{key}={_value(event[key])}")
    if isinstance(event.get("infohashes"), list):
        parts.append(f"infohashes={len(event['infohashes'])}")
    summary = " ".join(parts)
    traceback = event.get(TRACEBACK_KEY)
    if traceback is None:
        return summary
    return summary + "\n" + _value(traceback).rstrip("\n")


def encode(pairs: Iterator[tuple[str, str]]) -> bytes:
    """The native protocol's datagram for ``pairs``."""
    out = bytearray()
    for key, value in pairs:
        data = value.encode("utf-8", errors="replace")
        if b"\n" in data:
            out += key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return bytes(out)


class JournalRenderer:
    """A final structlog processor: send to journald and drop, or fall back to a JSON line."""

    def __init__(self, fallback: TextIO, path: str | None = None) -> None:
        self.path = path or os.environ.get("MAGNETD_JOURNAL_SOCKET", SOCKET)
        self.fallback = fallback
        self._sock: socket.socket | None = None

    def __call__(self, _: Any, __: str, event: MutableMapping[str, Any]) -> str:
        event.pop("timestamp", None)  # journald stamps entries itself
        if self._send(list(fields(event))):
            raise structlog.DropEvent
        return json.dumps(dict(event), default=str)

    def _send(self, pairs: list[tuple[str, str]]) -> bool:
        if _sendv is not None and self.path == SOCKET:
            try:
                _sendv(*(f"{key}={value}" for key, value in pairs))
            except (OSError, ValueError):
                return False
            return True
        datagram = encode(iter(pairs))
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.sendto(datagram, self.path)
        except OSError:
            self._sock = None
            return False
        return True
