"""What the supervisor tells about itself: the status snapshot and systemd's status line.

Both are read from the supervisor's state, on its thread: the snapshot is written to
``status.json`` (``magnetd status``) and kept for the status endpoint, the line goes
to systemd.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from magnetd.model import MagnetOutcome
from magnetd.records import status

if TYPE_CHECKING:
    from magnetd.service.supervisor import Supervisor


def status_line(supervisor: Supervisor) -> str:
    waiting = len(supervisor.inbox)
    held = " (held)" if supervisor.hold.active else ""
    return f"{waiting} waiting{held} · {supervisor.parts.health.summary()}"


def snapshot(supervisor: Supervisor) -> status.Snapshot:
    inbox = supervisor.inbox
    oldest = inbox.oldest()
    health = supervisor.parts.health
    return status.Snapshot(
        pid=os.getpid(),
        started_at=supervisor.started_at,
        probe_interval=supervisor.config.probe_interval,
        vpn=health.vpn_view(),
        gates=health.gate_views(),
        instances=health.views(),
        inbox=len(inbox),
        held=len(inbox) if supervisor.hold.active else 0,
        oldest_waiting=supervisor.parts.spool.relative(oldest.path) if oldest else None,
        oldest_waiting_age=round(time.time() - oldest.first_seen_wall, 1) if oldest else None,
        oldest_waiting_error=oldest.last_error if oldest else None,
        sent=supervisor.counters.sent,
        failed=supervisor.counters.failed,
        already_present=supervisor.counters.magnets[MagnetOutcome.ALREADY_PRESENT],
    )
