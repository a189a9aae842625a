"""Wall-clock time as magnetd writes it everywhere: ISO 8601, UTC, whole seconds, ``Z``."""

from __future__ import annotations

import datetime as dt
import time


def iso(moment: dt.datetime) -> str:
    """``moment`` as magnetd writes times, e.g. ``2026-11-23T18:00:00Z``."""
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


_made: tuple[int, str] = (-1, "")  # the last second formatted: files of a drop share it


def now_iso() -> str:
    """Now, e.g. ``2026-11-23T18:00:00Z`` (formatted once per second)."""
    global _made
    second = int(time.time())
    if second != _made[0]:
        _made = (second, iso(dt.datetime.fromtimestamp(second, dt.UTC)))
    return _made[1]


def parse_iso(text: str) -> dt.datetime:
    """The time :func:`now_iso` wrote."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
