"""What each instance was lately given, to re-add what it lost in an outage.

qBittorrent can list a torrent and still lose it: an add that arrives while it
is shutting down is accepted, listed, and never saved. So the dispatcher
records every verified entry here for a while; when an instance comes back
after an outage, the entries it was given shortly before are checked again
and any missing ones re-added. The ledger lives in memory only.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from magnetd import logs
from magnetd.delivery.courier import push
from magnetd.delivery.qbittorrent import ClientApi, InstanceError
from magnetd.health.state import Health
from magnetd.model import AddOptions, Entry, InstanceStatus

WINDOW = 120.0
"""Seconds before an outage whose adds are checked again. qBittorrent saves new torrents'
resume data within seconds (and at once on a clean exit); two minutes covers a slow disk
with a wide margin while keeping the memory of a busy day small."""

log = logs.get(__name__)


Pair = tuple[Entry, AddOptions]


@dataclass(frozen=True, slots=True)
class Given:
    """What one instance was seen to list at one time: one landed batch's entries.

    One record per batch, holding the batch's own (entry, options) pairs: a record per
    entry cost ~200 bytes for each file of a large drop, for two minutes.
    """

    at: float
    instance: str
    pairs: tuple[Pair, ...]


class Ledger:
    """Recent verified adds per instance; owned by the supervisor's thread."""

    def __init__(
        self,
        clients: Mapping[str, ClientApi],
        health: Health,
        batch_size: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.clients = clients
        self.health = health
        self.batch_size = batch_size
        self.clock = clock
        self.sleep = sleep
        self._given: deque[Given] = deque()
        self._outage: set[str] = set()

    def record(self, instance: str, pairs: Sequence[Pair]) -> None:
        """Remember entries ``instance`` has just been seen to list."""
        if pairs:
            self._given.append(Given(self.clock(), instance, tuple(pairs)))

    def check(self) -> None:
        """Note outages; re-check an instance that is back. Cheap when nothing was given."""
        if not self._given:
            return
        for view in self.health.views():
            if view.status != InstanceStatus.OK:
                self._outage.add(view.name)
            elif view.name in self._outage:
                self._restore(view.name)
        self._forget_old()

    def _forget_old(self) -> None:
        """Drop entries older than the window, unless their instance is still out."""
        limit = self.clock() - WINDOW
        kept = [g for g in self._given if g.at >= limit or g.instance in self._outage]
        if len(kept) != len(self._given):
            self._given = deque(kept)

    def _restore(self, name: str) -> None:
        given = [pair for g in self._given if g.instance == name for pair in g.pairs]
        client = self.clients[name]
        try:
            listed = client.present({entry.torrent_id for entry, _ in given})
            lost = [pair for pair in given if pair[0].torrent_id not in listed]
            if lost:
                _report(name, lost, push(client, name, lost, self.batch_size, self.sleep).present)
        except InstanceError as exc:
            log.warning("recheck_failed", instance=name, status=exc.status, detail=exc.detail)
            return  # still in outage: tried again when it is OK next
        self._outage.discard(name)


def _report(name: str, lost: list[Pair], back: set[str]) -> None:
    readded = [entry.torrent_id for entry, _ in lost if entry.torrent_id in back]
    missing = [entry.torrent_id for entry, _ in lost if entry.torrent_id not in back]
    if readded:
        log.warning(
            "magnets_readded",
            instance=name,
            infohashes=readded,
            count=len(readded),
            reason="qBittorrent lost them in an outage",
        )
    if missing:
        log.error(
            "magnets_lost",
            instance=name,
            infohashes=missing,
            count=len(missing),
            reason="lost in an outage and not accepted again",
        )
