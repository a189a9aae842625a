"""structlog set-up: console on a TTY, JSON lines otherwise; secrets redacted everywhere.

Events are names, not sentences: ``log.info("file_sent", file=..., infohash=...)``.
Every event carries the ``logger`` that emitted it; ``None`` values are left out;
an error logged with ``exc_info`` (``log.exception``) carries its traceback on every
target, as the ``exception`` field, masked like the rest.

The hot path (one ``file_sent`` per file) is kept cheap: a logger from :func:`get` keeps
its assembled structlog logger until the configuration changes, one processor adds the
level, logger name and time and masks secrets (the time's date and time of day formatted
once a second), and JSON lines are written by orjson. The fields are those structlog's
own ``add_log_level``, ``add_logger_name``, ``TimeStamper`` and ``JSONRenderer`` write.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any, TextIO, cast

import orjson
import structlog
from structlog.dev import set_exc_info
from structlog.processors import ExceptionRenderer
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import FilteringBoundLogger, Processor

from magnetd.clock import iso_utc

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
_secret_values: tuple[str, ...] = ()  # a snapshot of _secrets, replaced whole: read without the lock


def register_secrets(values: Iterable[str]) -> None:
    """Remember secret values so that they are masked wherever they appear in an event."""
    global _secret_values
    with _secrets_lock:
        _secrets.update(v for v in values if len(v) >= 3)
        _secret_values = tuple(_secrets)


@functools.lru_cache(maxsize=4096)  # event keys are few: names in the code
def _is_secret_key(key: str) -> bool:
    return key.lower() in SECRET_KEYS


def scrub(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor: mask secrets, and leave out fields whose value is ``None``.

    A field named like a secret (``password``, ``SID``, …) is masked whatever its value,
    ``None`` included; registered secret values are masked wherever they appear, in
    strings inside lists and dicts (a structured traceback) too. ``False``, ``0`` and
    ``""`` stay. The order of the fields is kept.
    """
    secrets = _secret_values
    scrubbed: dict[str, Any] = {}
    for key, value in event.items():
        if _is_secret_key(key):
            scrubbed[key] = REDACTED
        elif value.__class__ is str:  # most fields: a shortcut through _scrub
            scrubbed[key] = _mask(value, secrets) if secrets else value
        elif value is not None:
            scrubbed[key] = _scrub(key, value, secrets)
    return scrubbed


def _scrub(key: str, value: Any, secrets: tuple[str, ...]) -> Any:
    if _is_secret_key(key):
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


# A traceback as data for JSON lines: frames without their local variables, which may hold secrets.
dict_tracebacks = ExceptionRenderer(ExceptionDictTransformer(show_locals=False))


class JSONSerializer:
    """The ``serializer`` of structlog's ``JSONRenderer``: orjson, with the ``default`` it is given.

    orjson writes an event about ten times faster than ``json`` (0.2 against 2.4 µs for a
    ``file_sent`` line, written once per file). Its lines are compact, UTF-8 rather than
    ``\\u`` escapes, and strict JSON: NaN and infinities are ``null``. What it refuses, a
    lone surrogate (a file name that is not UTF-8), an integer past 64 bits, a key that is
    not text, goes to ``json`` instead, which escapes it (NaN there is ``null`` too).
    Dataclasses and datetimes go to ``default`` as they do with ``json``.
    """

    def __call__(self, value: Any, *, default: Callable[[Any], Any], sort_keys: bool = False) -> str:
        try:
            return orjson.dumps(value, default=default, option=_SORTED if sort_keys else _PLAIN).decode()
        except orjson.JSONEncodeError:
            try:
                return json.dumps(value, default=default, sort_keys=sort_keys, allow_nan=False)
            except ValueError:  # NaN or an infinity: null, as orjson writes it
                return json.dumps(_finite(value), default=default, sort_keys=sort_keys)


def _finite(value: Any) -> Any:
    """``value`` with every NaN and infinity inside it replaced by None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


_PLAIN = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
_SORTED = _PLAIN | orjson.OPT_SORT_KEYS


EventProcessor = Callable[[Any, str, MutableMapping[str, Any]], MutableMapping[str, Any]]


def preparer(tracebacks: Processor, stamped: bool) -> EventProcessor:
    """One processor for what every event gets: level, logger name, time, traceback, scrub.

    It writes what structlog's ``add_log_level``, ``add_logger_name``, ``TimeStamper``
    (unless ``stamped`` is False: journald stamps entries itself), ``set_exc_info`` and
    ``tracebacks`` write, then :func:`scrub`; one call instead of six, and the traceback
    processors only run for an event that has one.
    """

    def prepare(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        event["level"] = _LEVEL_NAMES.get(method, method)
        event["logger"] = logger.name
        if stamped:
            event["timestamp"] = iso_utc(time.time_ns())
        if method == "exception" or "exc_info" in event:
            event = cast(
                MutableMapping[str, Any], tracebacks(logger, method, set_exc_info(logger, method, event))
            )
        return scrub(logger, method, event)

    return prepare


_LEVEL_NAMES = {"warn": "warning", "exception": "error"}  # structlog's map_method_name


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
        renderer = structlog.processors.JSONRenderer(JSONSerializer(), sort_keys=False)
    structlog.configure(
        processors=[preparer(tracebacks, stamped=chosen != "journal"), renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=NamedPrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    return chosen


def get(name: str = ROOT) -> FilteringBoundLogger:
    """A logger whose events carry ``logger=<name>``.

    Like structlog's lazy proxy, a module-level ``log = get(...)`` made before
    :func:`setup` uses the configuration in force when each event is logged; it
    assembles structlog's logger again only when that configuration has changed.
    """
    return cast(FilteringBoundLogger, CachedLogger(name))


def _level_method(name: str) -> Any:
    """A property of :class:`CachedLogger`: the assembled logger's own ``name`` method."""
    return property(lambda self: getattr(self._logger(), name))


class CachedLogger:
    """structlog's ``get_logger(name)``, assembled once per configuration instead of per event.

    The configuration is recognised by the identity of its processor list, logger
    factory, wrapper class and context class: :func:`setup`, ``structlog.configure``,
    ``reset_defaults`` and ``structlog.testing.capture_logs`` (which changes the list
    in place) are all followed.
    """

    __slots__ = ("_cached", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._cached: tuple[tuple[object, ...], Any] | None = None

    def _logger(self) -> Any:
        config = structlog.get_config()
        processors, factory = config["processors"], config["logger_factory"]
        wrapper, context = config["wrapper_class"], config["context_class"]
        cached = self._cached
        if cached is not None:
            key = cached[0]
            if key[0] is processors and key[1] is factory and key[2] is wrapper and key[3] is context:
                return cached[1]
        logger = structlog.get_logger(self._name).bind()
        self._cached = ((processors, factory, wrapper, context), logger)
        return logger

    def __getattr__(self, name: str) -> Any:
        return getattr(self._logger(), name)

    # The level methods magnetd calls, found without the failed look-up that reaches
    # __getattr__ (0.5 of the 1 µs it costs: a log line for every file of a large drop).
    debug = _level_method("debug")
    info = _level_method("info")
    warning = _level_method("warning")
    error = _level_method("error")
    exception = _level_method("exception")

    def __repr__(self) -> str:
        return f"<CachedLogger {self._name!r}>"


class NamedPrintLogger(structlog.WriteLogger):
    """structlog's ``WriteLogger`` with the ``name`` that ``add_logger_name`` reads.

    It writes each line with its newline in one call (``PrintLogger`` makes two, and
    so two system calls on an unbuffered stream), then flushes.
    """

    def __init__(self, file: TextIO, name: str) -> None:
        super().__init__(file)
        self.name = name


class NamedPrintLoggerFactory:
    """Makes a :class:`NamedPrintLogger` from ``get_logger(name)``'s ``name``."""

    def __init__(self, file: TextIO) -> None:
        self.file = file

    def __call__(self, *args: Any) -> NamedPrintLogger:
        return NamedPrintLogger(self.file, str(args[0]) if args else ROOT)
