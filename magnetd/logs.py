"""structlog set-up: console on a TTY, JSON lines otherwise; secrets redacted everywhere.

Events are names, not sentences: ``log.info("file_sent", file=..., infohash=...)``.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

REDACTED = "***"
SECRET_KEYS = frozenset(
    {
        "password",
        "passwd",
        "secret",
        "cookie",
        "cookies",
        "sid",
        "api_key",
        "apikey",
        "token",
        "authorization",
    }
)
TARGETS = ("auto", "console", "json", "journal")

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secrets(values: Iterable[str]) -> None:
    """Remember secret values so that they are masked wherever they appear in an event."""
    with _secrets_lock:
        _secrets.update(v for v in values if len(v) >= 3)


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor: mask secret keys, and known secret values inside any string."""
    with _secrets_lock:
        secrets = tuple(_secrets)
    for key, value in list(event.items()):
        if key.lower() in SECRET_KEYS:
            event[key] = REDACTED
        elif isinstance(value, str) and secrets:
            event[key] = _mask(value, secrets)
    return event


def _mask(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def choose_target(target: str, stream: TextIO = sys.stderr) -> str:
    """Resolve ``auto``: journald under systemd, console on a TTY, else JSON lines."""
    if target != "auto":
        return target
    if _stream_is_journal(stream):
        return "journal"
    return "console" if stream.isatty() else "json"


def _stream_is_journal(stream: TextIO) -> bool:
    """True when ``$JOURNAL_STREAM`` names the device and inode of ``stream``."""
    value = os.environ.get("JOURNAL_STREAM", "")
    try:
        device, inode = (int(part) for part in value.split(":"))
        info = os.fstat(stream.fileno())
    except (ValueError, OSError):
        return False
    return (info.st_dev, info.st_ino) == (device, inode)


def setup(target: str = "auto", level: str = "info", stream: TextIO = sys.stderr) -> str:
    """Configure structlog for the whole process; return the target in use."""
    chosen = choose_target(target, stream)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    renderer: Any
    if chosen == "journal":
        from magnetd.service import journal  # imported late: only needed under systemd

        renderer = journal.JournalRenderer(fallback=stream)
    elif chosen == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
        shared.append(structlog.dev.set_exc_info)
    else:
        shared.append(structlog.processors.dict_tracebacks)
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    return chosen


def get(name: str = "magnetd") -> Any:
    """A logger bound with the component's name."""
    return structlog.get_logger(name)
