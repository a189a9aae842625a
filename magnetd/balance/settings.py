"""``dispatch.strategy`` and the per-instance limits: what is built from the YAML the schema accepted.

The schema checks the types and forms (a size is bytes or digits with a K/M/G/T
suffix); this module turns the accepted values into frozen settings.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)\s*$", re.IGNORECASE)


class Strategy(StrEnum):
    """``dispatch.strategy``: how each file's instance is chosen among the eligible ones."""

    PRIORITY = "priority"  # the first eligible in config order (the default)
    ROUND_ROBIN = "round_robin"  # the next eligible one in turn, per file
    LEAST_ACTIVE = "least_active"  # the fewest active downloads, counting magnetd's own adds
    MOST_FREE_SPACE = "most_free_space"  # the most free space on disk


@dataclass(frozen=True)
class Limits:
    """An instance's own ``categories``, ``max_active``, ``min_free_space`` and ``max_adds_per_minute``."""

    categories: frozenset[str] | None = None  # None: items of any category, and those without
    max_active: int | None = None
    min_free_space: int | None = None  # bytes
    max_adds_per_minute: int | None = None

    @functools.cached_property
    def counted(self) -> bool:
        """Whether any limit counts something (downloads, space, adds): else the load is never read."""
        return any(v is not None for v in (self.max_active, self.min_free_space, self.max_adds_per_minute))

    def accepts(self, category: str | None) -> bool:
        """Whether an item of ``category`` may go here: any without a list; with one, only those listed."""
        if self.categories is None:
            return True
        return category is not None and category in self.categories


def parse_size(value: int | str) -> int:
    """Bytes from ``123``, ``"20G"``, ``"1.5T"`` (powers of 1024); ValueError on anything else."""
    if isinstance(value, int):
        return value
    found = _SIZE.match(value)
    if found is None:
        raise ValueError(f"{value!r} is not a size")
    number, unit = found.groups()
    return int(float(number) * _UNITS[unit.upper()])


def strategy(raw: Mapping[str, Any]) -> Strategy:
    """The ``dispatch.strategy`` of a config (``priority`` when absent)."""
    section = raw.get("dispatch") or {}
    return Strategy(section.get("strategy", Strategy.PRIORITY))


def limits(inst: Mapping[str, Any]) -> Limits:
    """The limits of one ``instances:`` entry."""
    categories = inst.get("categories")
    space = inst.get("min_free_space")
    return Limits(
        categories=frozenset(categories) if categories is not None else None,
        max_active=inst.get("max_active"),
        min_free_space=parse_size(space) if space is not None else None,
        max_adds_per_minute=inst.get("max_adds_per_minute"),
    )
