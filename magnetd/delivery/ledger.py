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


@dataclass(frozen=True)
class Given:
    at: float
    instance: str
    entry: Entry
    options: AddOptions


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

    def record(self, instance: str, pairs: Sequence[tuple[Entry, AddOptions]]) -> None:
        """Remember entries ``instance`` has just been seen to list."""
        now = self.clock()
        self._given.extend(Given(now, instance, entry, options) for entry, options in pairs)

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
        given = [g for g in self._given if g.instance == name]
        client = self.clients[name]
        try:
            listed = client.present({g.entry.torrent_id for g in given})
            lost = [g for g in given if g.entry.torrent_id not in listed]
            if lost:
                pairs = [(g.entry, g.options) for g in lost]
                _report(name, lost, push(client, name, pairs, self.batch_size, self.sleep).present)
        except InstanceError as exc:
            log.warning("recheck_failed", instance=name, status=exc.status, detail=exc.detail)
            return  # still in outage: tried again when it is OK next
        self._outage.discard(name)


def _report(name: str, lost: list[Given], back: set[str]) -> None:
    readded = [g.entry.torrent_id for g in lost if g.entry.torrent_id in back]
    missing = [g.entry.torrent_id for g in lost if g.entry.torrent_id not in back]
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
