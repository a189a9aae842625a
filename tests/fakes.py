"""Test doubles the unit tests share: a qBittorrent client, a clock, a ping reply.

:class:`FakeClient` stands where magnetd expects a
:class:`~magnetd.delivery.qbittorrent.ClientApi`; it keeps the torrents it was
given in memory and can be told to fail, refuse, lose adds or hold them.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from fastbencode import bdecode, bencode

from magnetd.delivery.qbittorrent import AddAnswer, InstanceError
from magnetd.model import AddOptions


class FakeClient:
    """An in-memory qBittorrent: records every call, lists what it took.

    ``fail``: every call raises ``InstanceError(fail, detail)`` (after being
    recorded); ``refuse``: adds answer "Fails."; ``lose``: adds are accepted but
    never listed. ``gate``, when set, holds each add until the test opens it.
    """

    def __init__(
        self,
        fail: str | InstanceError | None = None,
        detail: str = "connection dropped",
        refuse: bool = False,
        lose: bool = False,
        webapi: str = "2.8.19",
    ) -> None:
        self.fail, self.detail, self.refuse, self.lose, self.webapi = fail, detail, refuse, lose, webapi
        self.have: set[str] = set()  # lower-case ids it lists
        self.adds: list[tuple[list[str], AddOptions]] = []  # magnet adds that got through
        self.uploads: list[tuple[str, AddOptions]] = []  # .torrent adds that got through
        self.calls: Counter[str] = Counter()  # by method name, failed calls included
        self.threads: set[str] = set()  # where the adds ran
        self.gate: threading.Event | None = None
        self.closed = False

    def _raise(self) -> None:
        """Fail as told: with the very error given, or one of the status given."""
        if isinstance(self.fail, InstanceError):
            raise self.fail
        if self.fail:
            raise InstanceError(self.fail, self.detail)

    def _call(self, method: str) -> None:
        self.calls[method] += 1
        self._raise()

    def _add(self, method: str, ids: Collection[str]) -> AddAnswer:
        self.threads.add(threading.current_thread().name)
        self.calls[method] += 1
        if self.gate is not None:
            assert self.gate.wait(10), "the test never opened the gate"
        self._raise()
        if self.refuse:
            return AddAnswer(accepted=False)
        if not self.lose:
            self.have.update(ids)
        return AddAnswer(accepted=True)

    def version(self) -> str:
        self._call("version")
        return self.webapi

    def add_magnets(self, uris: Sequence[str], options: AddOptions) -> AddAnswer:
        answer = self._add("add_magnets", [u.split("btih:")[1][:40].lower() for u in uris])
        self.adds.append((list(uris), options))
        return answer

    def add_torrent(self, filename: str, data: bytes, options: AddOptions) -> AddAnswer:
        info: dict[bytes, Any] = bdecode(data)[b"info"]
        answer = self._add("add_torrent", [hashlib.sha1(bencode(info)).hexdigest()])
        self.uploads.append((filename, options))
        return answer

    def present(self, ids: Collection[str]) -> set[str]:
        self._call("present")
        return self.have & {i.lower() for i in ids}

    def torrents(self, ids: Collection[str]) -> list[dict[str, Any]]:
        self._call("torrents")
        return [{"hash": h} for h in sorted(self.have & {i.lower() for i in ids})]

    def close(self) -> None:
        self.calls["close"] += 1
        self.closed = True


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Host:
    """What ``icmplib.ping`` answers, as far as the VPN gate reads it."""

    is_alive: bool
    avg_rtt: float = 1.0
    packets_sent: int = 1
