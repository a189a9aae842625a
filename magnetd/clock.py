"""Wall-clock time as magnetd writes it everywhere: ISO 8601, UTC, whole seconds, ``Z`` (log
lines: microseconds too)."""

from __future__ import annotations

import datetime as dt
import time


def iso(moment: dt.datetime) -> str:
    """``moment`` as magnetd writes times, e.g. ``2026-11-23T18:00:00Z``."""
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


_second: tuple[int, str] = (-1, "")  # (a UTC second, its "YYYY-MM-DDTHH:MM:SS"), replaced whole


def _formatted(second: int) -> str:
    """``second`` (since the epoch) as ``YYYY-MM-DDTHH:MM:SS`` in UTC, formatted once per second:
    the files of a drop and their log lines share it."""
    global _second
    cached_second, text = _second
    if second != cached_second:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second = (second, text)
    return text


def iso_utc(now_ns: int) -> str:
    """``now_ns`` (ns since the epoch) as ``datetime.isoformat`` writes it in UTC, ``+00:00`` as ``Z``.

    Like ``datetime.now``, the time is cut (not rounded) to microseconds, and a time on
    a whole second has no fraction.
    """
    second, micros = divmod(now_ns // 1000, 1_000_000)
    text = _formatted(second)
    return f"{text}.{micros:06d}Z" if micros else f"{text}Z"


def now_iso() -> str:
    """Now, e.g. ``2026-11-23T18:00:00Z``: whole seconds, as :func:`iso` writes them."""
    return _formatted(int(time.time())) + "Z"


def parse_iso(text: str) -> dt.datetime:
    """The time :func:`now_iso` wrote."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
