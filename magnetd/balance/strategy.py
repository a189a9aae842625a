"""Which instance gets a file: eligibility and the strategy's choice, pure (no I/O, no clock).

:func:`limit_status` says whether an instance's own limits let it take ``n`` more
magnets now, and if not, the status that implies. :class:`Chooser` applies
``dispatch.strategy`` to the eligible instances, in config order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from magnetd.balance.load import Facts
from magnetd.balance.settings import Limits, Strategy
from magnetd.model import InstanceStatus


class Limited(Protocol):
    """What the strategy needs of an instance (a :class:`magnetd.config.Instance`)."""

    @property
    def name(self) -> str: ...

    @property
    def limits(self) -> Limits: ...


InstT = TypeVar("InstT", bound=Limited)


@dataclass(frozen=True)
class Verdict:
    """Why an instance may not take more now: a status and a short detail."""

    status: InstanceStatus
    detail: str


def limit_status(limits: Limits, facts: Facts, n: int = 1) -> Verdict | None:
    """None if ``n`` more magnets may go to an instance with these ``limits`` and ``facts`` now.

    A file of more magnets than the cap still goes to an instance with nothing
    counted against it, so that no file waits forever.
    """
    cap = limits.max_active
    if cap is not None and facts.active > 0 and facts.active + n > cap:
        return Verdict(InstanceStatus.BUSY, f"{facts.active} active downloads, max_active is {cap}")
    floor = limits.min_free_space
    if floor is not None and facts.free is not None and facts.free < floor:
        return Verdict(
            InstanceStatus.LOW_SPACE, f"{_size(facts.free)} free on disk, min_free_space is {_size(floor)}"
        )
    rate = limits.max_adds_per_minute
    if rate is not None and facts.recent > 0 and facts.recent + n > rate:
        detail = f"{facts.recent} magnets added in the last minute, max_adds_per_minute is {rate}"
        return Verdict(InstanceStatus.RATE_LIMITED, detail)
    return None


def _size(count: int) -> str:
    for unit, scale in (("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if count >= scale:
            return f"{count / scale:.1f}{unit}"
    return f"{count} bytes"


class Chooser:
    """Applies one strategy; remembers where round-robin stopped."""

    def __init__(self, strategy: Strategy, order: Sequence[str]) -> None:
        self.strategy = strategy
        self.order = list(order)  # every configured instance's name, in config order
        self._position = {name: index for index, name in enumerate(self.order)}
        self._last: str | None = None  # the instance round-robin chose last

    def choose(
        self, candidates: Sequence[InstT], category: str | None, n: int, facts: Callable[[str], Facts]
    ) -> InstT | None:
        """The instance for a file of ``n`` magnets of ``category`` among healthy ``candidates``, or None."""
        eligible = [
            inst
            for inst in candidates
            if inst.limits.accepts(category)
            and (not inst.limits.counted or limit_status(inst.limits, facts(inst.name), n) is None)
        ]
        if not eligible:
            return None
        if self.strategy == Strategy.ROUND_ROBIN:
            chosen = self._next(eligible)
        elif self.strategy == Strategy.LEAST_ACTIVE:
            chosen = min(eligible, key=lambda inst: facts(inst.name).active)  # ties: config order
        elif self.strategy == Strategy.MOST_FREE_SPACE:
            chosen = max(eligible, key=lambda inst: _free(facts(inst.name)))  # unknown counts as least
        else:
            chosen = eligible[0]
        self._last = chosen.name
        return chosen

    def _next(self, eligible: Sequence[InstT]) -> InstT:
        """The first eligible instance after the last one chosen, in config order, wrapping."""
        position, last = self._position, self._last
        if last not in position:
            return eligible[0]
        after, size = position[last] + 1, len(position)
        return min(eligible, key=lambda inst: (position[inst.name] - after) % size)


def _free(facts: Facts) -> int:
    return facts.free if facts.free is not None else -1
