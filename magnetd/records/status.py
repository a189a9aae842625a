"""The status snapshot: written atomically by the daemon, read by ``magnetd status``."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from magnetd.clock import now_iso, parse_iso
from magnetd.model import InstanceStatus, StatusCode
from magnetd.records.spool import write_atomic

FILE_NAME = "status.json"


@dataclass
class InstanceView:
    name: str
    url: str
    status: str
    detail: str = ""
    since: str = ""
    requires_vpn: bool = False
    webapi: str | None = None
    qbittorrent: str | None = None  # app/version, e.g. v5.3.0
    last_error: str | None = None


@dataclass
class Snapshot:
    """What the daemon is doing, as ``magnetd status --json`` shows it."""

    pid: int
    started_at: str
    probe_interval: float
    vpn: dict[str, Any] | None
    instances: list[InstanceView]
    inbox: int = 0
    held: int = 0
    oldest_waiting: str | None = None
    oldest_waiting_age: float | None = None
    oldest_waiting_error: str | None = None
    sent: int = 0
    failed: int = 0
    already_present: int = 0  # magnets qBittorrent already had, since magnetd started (counted as sent)
    updated_at: str = field(default_factory=now_iso)
    gates: list[dict[str, Any]] | None = None  # every VPN gate: name, check, status, detail, since

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def path_in(state: Path) -> Path:
    return state / FILE_NAME


def write(state: Path, snapshot: Mapping[str, Any]) -> None:
    """Write a snapshot (:meth:`Snapshot.to_dict`) atomically: readers never see half a file.

    Not fsynced: a snapshot is rewritten soon after every pass and at every change of
    status, and is worth nothing after a power cut (a reader takes a lost or empty one for
    "not running"). An fsync on a busy disk would hold the loop for as long.
    """
    write_atomic(path_in(state), json.dumps(snapshot, indent=2).encode("utf-8") + b"\n", durable=False)


def read(state: Path) -> dict[str, Any] | None:
    """The last snapshot, or None when the daemon never wrote one."""
    try:
        data: dict[str, Any] = json.loads(path_in(state).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data


def age_seconds(snapshot: dict[str, Any], now: dt.datetime | None = None) -> float:
    """Seconds since the snapshot was written."""
    now = now or dt.datetime.now(dt.UTC)
    updated = parse_iso(str(snapshot["updated_at"]))
    return max(0.0, (now - updated).total_seconds())


def is_running(snapshot: dict[str, Any], now: dt.datetime | None = None) -> bool:
    """True when the writer still runs and wrote recently (three probe rounds + slack)."""
    limit = 3 * float(snapshot.get("probe_interval", 10)) + 10
    return _pid_alive(int(snapshot.get("pid", 0))) and age_seconds(snapshot, now) <= limit


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if sys.platform == "win32":
        return True  # cannot probe cheaply; the age check decides
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def verdict(snapshot: dict[str, Any] | None, now: dt.datetime | None = None) -> StatusCode:
    """What ``magnetd status`` exits with for ``snapshot``."""
    if snapshot is None or not is_running(snapshot, now):
        return StatusCode.NOT_RUNNING
    ok = [i.get("status") == InstanceStatus.OK for i in snapshot.get("instances", [])]
    if ok and all(ok):
        return StatusCode.OK
    return StatusCode.DEGRADED if any(ok) else StatusCode.HOLDING


def _age_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def render(snapshot: dict[str, Any] | None, now: dt.datetime | None = None) -> str:
    """A short human summary of a snapshot."""
    if snapshot is None:
        return "magnetd has not written a status yet (is it running with this config?)\n"
    running = is_running(snapshot, now)
    age = _age_text(age_seconds(snapshot, now))
    head = (
        f"magnetd: running (pid {snapshot['pid']})"
        if running
        else (f"magnetd: NOT RUNNING - this status is stale (last written {age} ago)")
    )
    lines = [head]
    vpn = snapshot.get("vpn")
    if snapshot.get("gates"):
        for gate in snapshot["gates"]:
            text = f"VPN {gate['name']} ({gate['check']}): {gate['status']}"
            lines.append(text + (f" - {gate['detail']}" if gate.get("detail") else ""))
    elif vpn:
        lines.append(
            f"VPN {vpn['gateway']}: {vpn['status']}" + (f" - {vpn['detail']}" if vpn.get("detail") else "")
        )
    for inst in snapshot["instances"]:
        text = f"  {inst['name']:<12} {inst['status']:<14} {inst['url']}"
        if inst.get("qbittorrent") or inst.get("webapi"):
            text += f"  qBittorrent {inst.get('qbittorrent') or '?'} (WebAPI {inst.get('webapi') or '?'})"
        if inst.get("status") != InstanceStatus.OK and (inst.get("detail") or inst.get("last_error")):
            text += f"\n  {'':<12} {inst.get('detail') or inst.get('last_error')}"
        lines.append(text)
    waiting = int(snapshot.get("inbox", 0))
    line = f"inbox: {waiting} waiting"
    if waiting:
        line += f", oldest {_age_text(snapshot.get('oldest_waiting_age'))} ({snapshot.get('oldest_waiting')})"
        if snapshot.get("oldest_waiting_error"):
            line += f"\n  last error: {snapshot['oldest_waiting_error']}"
    if snapshot.get("held"):
        line += f"; {snapshot['held']} HELD: no instance is healthy"
    lines.append(line)
    lines.append(f"sent: {snapshot.get('sent', 0)}  failed: {snapshot.get('failed', 0)}")
    lines.append(f"updated: {snapshot['updated_at']} ({age} ago)")
    return "\n".join(lines) + "\n"
