"""structlog set-up: console on a TTY, JSON lines otherwise; secrets redacted everywhere.

Events are names, not sentences: ``log.info("file_sent", file=..., infohash=...)``.
Every event carries the ``logger`` that emitted it; ``None`` values are left out;
an error logged with ``exc_info`` (``log.exception``) carries its traceback on every
target, as the ``exception`` field, masked like the rest.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog
from structlog.processors import ExceptionRenderer
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import FilteringBoundLogger, Processor

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
ROOT = "magnetd"  # the logger name of events logged without one

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secrets(values: Iterable[str]) -> None:
    """Remember secret values so that they are masked wherever they appear in an event."""
    with _secrets_lock:
        _secrets.update(v for v in values if len(v) >= 3)


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor: mask secret keys, and known secret values inside any string.

    Strings inside lists and dicts (a structured traceback) are masked too.
    """
    with _secrets_lock:
        secrets = tuple(_secrets)
    for key, value in list(event.items()):
        event[key] = _scrub(key, value, secrets)
    return event


def _scrub(key: str, value: Any, secrets: tuple[str, ...]) -> Any:
    if key.lower() in SECRET_KEYS:
        return REDACTED
    if isinstance(value, str):
        return _mask(value, secrets) if secrets else value
    if isinstance(value, dict):
        return {k: _scrub(str(k), v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub("", v, secrets) for v in value]
    return value


def _mask(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def drop_none(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor: leave out fields whose value is ``None`` (``False``, ``0``, ``""`` stay)."""
    for key in [k for k, v in event.items() if v is None]:
        del event[key]
    return event


# A traceback as data for JSON lines: frames without their local variables, which may hold secrets.
dict_tracebacks = ExceptionRenderer(ExceptionDictTransformer(show_locals=False))


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
    renderer: Processor
    tracebacks: Processor = structlog.processors.format_exc_info  # text: console and journald
    if chosen == "journal":
        from magnetd.service import journal  # imported late: only needed under systemd

        renderer = journal.JournalRenderer(fallback=stream)
    elif chosen == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    else:
        tracebacks = dict_tracebacks
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.dev.set_exc_info,
        tracebacks,  # before redaction: a traceback is masked like any other field
        redact,
        drop_none,
    ]
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=NamedPrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    return chosen


def get(name: str = ROOT) -> FilteringBoundLogger:
    """A logger whose events carry ``logger=<name>``.

    It is structlog's lazy proxy: a module-level ``log = get(...)`` made before
    :func:`setup` uses the configuration in force when each event is logged.
    """
    logger: FilteringBoundLogger = structlog.get_logger(name)
    return logger


class NamedPrintLogger(structlog.PrintLogger):
    """structlog's ``PrintLogger`` with the ``name`` that ``add_logger_name`` reads."""

    def __init__(self, file: TextIO, name: str) -> None:
        super().__init__(file)
        self.name = name


class NamedPrintLoggerFactory:
    """Makes a :class:`NamedPrintLogger` from ``get_logger(name)``'s ``name``."""

    def __init__(self, file: TextIO) -> None:
        self.file = file

    def __call__(self, *args: Any) -> NamedPrintLogger:
        return NamedPrintLogger(self.file, str(args[0]) if args else ROOT)
