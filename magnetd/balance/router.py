"""The dispatcher's and the prober's shared view of several instances: limits, load, the strategy.

:class:`Balance` chooses each file's instance (noting the adds it plans, so one
batch never pushes an instance past its ``max_active`` or rate), and turns each
instance's limits into the status ``magnetd status`` shows: ``BUSY``,
``LOW_SPACE``, ``RATE_LIMITED``, or none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from magnetd.balance.load import Loads
from magnetd.balance.settings import Strategy
from magnetd.balance.strategy import Chooser, Verdict, limit_status

if TYPE_CHECKING:
    from magnetd.config import Config, Instance


class Overlay(Protocol):
    """Where limit statuses are shown (:class:`magnetd.health.state.Health`)."""

    def set_limit(self, name: str, verdict: Verdict | None) -> None: ...


class Balance:
    """Limits, load facts and the strategy for one config."""

    def __init__(self, config: Config, loads: Loads | None = None) -> None:
        self.instances = config.instances
        self.strategy = config.strategy
        self.loads = loads or Loads(i.name for i in config.instances)
        self.chooser = Chooser(config.strategy, [i.name for i in config.instances])

    def plain(self) -> bool:
        """Whether this is today's single-target behaviour: priority, no limits, no categories."""
        return self.strategy == Strategy.PRIORITY and not any(_limited(i) for i in self.instances)

    def needs_active(self, inst: Instance) -> bool:
        """Whether the prober must count this instance's active downloads."""
        return inst.limits.max_active is not None or self.strategy == Strategy.LEAST_ACTIVE

    def needs_free(self, inst: Instance) -> bool:
        """Whether the prober must read this instance's free space (at most once a minute)."""
        return inst.limits.min_free_space is not None or self.strategy == Strategy.MOST_FREE_SPACE

    def routable(self, category: str | None) -> bool:
        """Whether any configured instance accepts items of ``category`` at all."""
        return any(i.limits.accepts(category) for i in self.instances)

    def choose(self, candidates: Sequence[Instance], category: str | None, n: int) -> Instance | None:
        """The instance for a file of ``n`` magnets, its adds noted; None: none can take it now."""
        chosen = self.chooser.choose(candidates, category, n, self.loads.facts)
        if chosen is not None:
            self.loads.note_adds(chosen.name, n)
        return chosen

    def refresh(self, overlay: Overlay) -> None:
        """Show each instance's limit status (for one more magnet) where statuses are shown."""
        for inst in self.instances:
            if _limited(inst):
                overlay.set_limit(inst.name, limit_status(inst.limits, self.loads.facts(inst.name)))


def _limited(inst: Instance) -> bool:
    lim = inst.limits
    return any(
        v is not None for v in (lim.categories, lim.max_active, lim.min_free_space, lim.max_adds_per_minute)
    )
