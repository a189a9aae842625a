"""Test doubles the unit tests share: a qBittorrent client, a clock, a ping reply, a web backend.

:class:`FakeClient` stands where magnetd expects a
:class:`~magnetd.delivery.qbittorrent.ClientApi`; it keeps the torrents it was
given in memory and can be told to fail, refuse, lose adds or hold them.
"""

from __future__ import annotations

import copy
import hashlib
import os
import threading
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any

from fastbencode import bdecode, bencode

from magnetd.clock import now_iso
from magnetd.delivery.qbittorrent import AddAnswer, InstanceError
from magnetd.model import AddOptions, FileKind, GateStatus, InstanceStatus
from magnetd.records.status import InstanceView, Snapshot
from magnetd.telemetry.metrics import MetricsSnapshot


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
        self.sequence: list[tuple[str, frozenset[str]]] = []  # present and add calls in order, with their ids
        self.threads: set[str] = set()  # where the adds ran
        self.per_call: list[int] = []  # each present call's ids per request
        self.gate: threading.Event | None = None
        self.closed = False
        self.connection = "connected"  # transfer/info's connection_status

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
        self.sequence.append((method, frozenset(ids)))
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

    def app_version(self) -> str:
        self._call("app_version")
        return "v4.5.2" if self.webapi.startswith("2.8.") else "v5.3.0"

    def connection_status(self) -> str:
        self._call("connection_status")
        return self.connection

    def add_magnets(self, uris: Sequence[str], options: AddOptions) -> AddAnswer:
        answer = self._add("add_magnets", [u.split("btih:")[1][:40].lower() for u in uris])
        self.adds.append((list(uris), options))
        return answer

    def add_torrent(self, filename: str, data: bytes, options: AddOptions) -> AddAnswer:
        info: dict[bytes, Any] = bdecode(data)[b"info"]
        answer = self._add("add_torrent", [hashlib.sha1(bencode(info)).hexdigest()])
        self.uploads.append((filename, options))
        return answer

    def present(self, ids: Collection[str], per_call: int = 1000) -> set[str]:
        if self.gate is not None:  # the look before the add waits too: it is part of the exchange
            assert self.gate.wait(10), "the test never opened the gate"
        self._call("present")
        self.per_call.append(per_call)
        self.sequence.append(("present", frozenset(i.lower() for i in ids)))
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


class FakeBackend:
    """What the status endpoint asks of the daemon, in memory; the test changes it while it serves.

    Its status starts as a real :class:`~magnetd.records.status.Snapshot` of two
    instances (``primary`` OK behind VPN gate ``10.8.0.1``, ``backup``
    UNREACHABLE) plus ``recent``. ``failed`` names the files a retry can move;
    ``add`` refuses bodies containing ``refuse-me`` with a ValueError.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.age = 0.0
        self.limit = 30.0
        self.is_ready: tuple[bool, str] = (True, "")
        self.added: list[tuple[bytes, FileKind]] = []
        self.failed: set[str] = {"bad link.magnet", "books/old.json"}
        self.retried: list[list[str]] = []
        self.metrics = MetricsSnapshot()
        self.broken = False  # status() raises
        snapshot = Snapshot(
            pid=os.getpid(),
            started_at=now_iso(),
            probe_interval=1.0,
            vpn={"gateway": "10.8.0.1", "status": GateStatus.UP, "detail": "", "since": now_iso()},
            instances=[
                InstanceView(
                    "primary", "http://127.0.0.1:8080/", InstanceStatus.OK, since=now_iso(), requires_vpn=True
                ),
                InstanceView(
                    "backup",
                    "http://nas.lan:8080/",
                    InstanceStatus.UNREACHABLE,
                    detail="connection refused",
                    since=now_iso(),
                ),
            ],
            inbox=2,
            oldest_waiting="waiting.magnet",
            oldest_waiting_age=75.0,
            sent=12,
            failed=1,
        )
        self.state: dict[str, Any] = {**snapshot.to_dict(), "running": True, "stale": False, "recent": []}
        self.outcome("bad link.magnet", "failed", "not_magnet", None)
        self.outcome("ubuntu.magnet", "sent", "", "primary")

    def outcome(self, file: str, outcome: str, reason: str, instance: str | None) -> None:
        with self.lock:
            entry = {
                "file": file,
                "outcome": outcome,
                "reason": reason,
                "instance": instance,
                "at": now_iso(),
            }
            self.state["recent"].insert(0, entry)

    def set_instance(self, name: str, status: str, detail: str = "") -> None:
        with self.lock:
            for view in self.state["instances"]:
                if view["name"] == name:
                    view.update(status=status, detail=detail, since=now_iso())
            self.metrics = replace(
                self.metrics, instances={v["name"]: v["status"] for v in self.state["instances"]}
            )

    def snapshot(self) -> MetricsSnapshot:
        with self.lock:
            return self.metrics

    def status(self) -> dict[str, Any]:
        if self.broken:
            raise RuntimeError("status broke")
        with self.lock:
            return copy.deepcopy(self.state)

    def heartbeat_age(self) -> float:
        return self.age

    def healthz_limit(self) -> float:
        return self.limit

    def ready(self) -> tuple[bool, str]:
        return self.is_ready

    def add(self, data: bytes, kind: FileKind) -> str:
        if b"refuse-me" in data:
            raise ValueError("the inbox is full")
        with self.lock:
            self.added.append((data, kind))
            return f"web-{len(self.added)}{kind.suffix}"

    def retry(self, names: Sequence[str]) -> list[str]:
        with self.lock:
            self.retried.append(list(names))
            chosen = [n for n in names if n in self.failed] if names else sorted(self.failed)
            self.failed -= set(chosen)
            return chosen
