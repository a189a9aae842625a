"""The portal: the status endpoint's view of a running daemon, and the endpoint's lifecycle.

Every answer comes from memory the supervisor's thread keeps current (the last
status snapshot, the heartbeat, the counters, the health record), so a request
never waits for the loop and never touches what the loop owns. Adding and
retrying write files the way ``magnetd add`` and ``magnetd retry`` do, as any
producer writing into the inbox would.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from magnetd import logs
from magnetd.model import FileKind, GateStatus
from magnetd.records.spool import drop_file, move_back
from magnetd.telemetry.metrics import Metrics, MetricsSnapshot
from magnetd.telemetry.settings import Http
from magnetd.telemetry.web import WebApp, WebServer, healthz_limit

if TYPE_CHECKING:
    from magnetd.service.supervisor import Supervisor

log = logs.get(__name__)


class Portal:
    """Answers the status endpoint for ``supervisor``, and runs its server."""

    def __init__(self, supervisor: Supervisor, http: Http) -> None:
        self.supervisor = supervisor
        self.http = http
        self.metrics = Metrics(self.measure, probe_targets=_targets(supervisor))
        self.server: WebServer | None = None

    # -- lifecycle (the supervisor's thread) --------------------------------------------------

    def start(self) -> None:
        """Listen; an address that cannot be taken is logged and the daemon goes on without it."""
        server = WebServer(WebApp(self, self.metrics, self.http.token), self.http.listen)
        try:
            server.start()
        except OSError as exc:
            log.error("http_failed", listen=self.http.listen, error=exc.strerror or str(exc))
            return
        self.server = server

    def stop(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.stop()

    def reconfigure(self, http: Http) -> None:
        """A reloaded config: listen anew if the address or the token changed."""
        if http != self.http:
            self.stop()
            self.http = http
            self.start()

    # -- the Backend protocol (the server's threads) -----------------------------------------

    def status(self) -> dict[str, Any]:
        sup = self.supervisor
        recent = list(sup.counters.recent)
        recent.reverse()
        return {**sup.latest, "running": True, "stale": False, "recent": recent}

    def heartbeat_age(self) -> float:
        return time.monotonic() - self.supervisor.heartbeat

    def healthz_limit(self) -> float:
        return healthz_limit(self.supervisor.config.probe_interval)

    def ready(self) -> tuple[bool, str]:
        health = self.supervisor.parts.health
        if health.usable():
            return True, ""
        return False, f"no instance can take files now: {health.summary()}"

    def add(self, data: bytes, kind: FileKind) -> str:
        inbox = self.supervisor.config.folders.inbox
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}{kind.suffix}"
        path = drop_file(inbox, name, data)
        log.info("http_added", file=path.name, kind=str(kind), bytes=len(data))
        return path.name

    def retry(self, names: Sequence[str]) -> list[str]:
        folders = self.supervisor.config.folders
        moved, _missing = move_back(folders.failed, folders.inbox, names)
        return [str(path.relative_to(folders.inbox)) for path in moved]

    # -- metrics (read on each scrape) -------------------------------------------------------

    def measure(self) -> MetricsSnapshot:
        sup = self.supervisor
        latest = sup.latest
        views = sup.parts.health.views()
        gates = {str(g["name"]): g["status"] == GateStatus.UP for g in latest.get("gates") or []}
        return MetricsSnapshot(
            files=dict(sup.counters.files),
            magnets=dict(sup.counters.magnets),
            inbox_files=int(latest.get("inbox", 0)),
            inbox_oldest_seconds=float(latest.get("oldest_waiting_age") or 0.0),
            instances={v.name: v.status for v in views},
            gates=gates,
            notifications={
                (target, result): count
                for target, results in sup.notices.counts().items()
                for result, count in results.items()
            },
        )


def _targets(supervisor: Supervisor) -> list[str]:
    """Probe targets known from the start: each instance, and the VPN gate."""
    config = supervisor.config
    names = [i.name for i in config.instances]
    return [*names, *(g.name for g in config.gates)]
