"""What to do about an instance magnetd cannot log in to: the words of its status detail.

After a refused login magnetd waits before it sends the password again (see
``delivery/connection.py``), so the detail says which password source was
used (never the password), when the next attempt is, and how to make it now.
"""

from __future__ import annotations

import datetime as dt
import sys

from magnetd.clock import iso
from magnetd.config import Instance
from magnetd.delivery.qbittorrent import InstanceError
from magnetd.model import InstanceStatus

LOGIN_STATUSES = frozenset({InstanceStatus.AUTH_FAILED, InstanceStatus.BANNED})
"""Statuses that only a new password (or qBittorrent lifting a ban) ends."""

NEEDS_CONFIG = LOGIN_STATUSES | {InstanceStatus.NOT_CONFIGURED}
"""Statuses a change of the config or of the password file may end: magnetd watches those files then."""


def reload_command() -> str:
    """How to make the running daemon re-read its config on this system."""
    if sys.platform == "win32":
        return "`sc.exe control magnetd paramchange`"
    return "`systemctl reload magnetd` or SIGHUP"


def failure_detail(inst: Instance, error: InstanceError, now: dt.datetime) -> str:
    """The status detail for ``error``: for a refused login, the source, the next attempt and the fix."""
    if error.status not in LOGIN_STATUSES:
        return error.detail
    secret = "key" if inst.api_key else "password"
    parts = [f"{error.reason} ({secret} from {inst.password_from})" if inst.password_from else error.reason]
    if error.retry_in is not None:
        at = now + dt.timedelta(seconds=error.retry_in)
        parts.append(f"next login attempt at {iso(at)}, in {duration(error.retry_in)}")
    if error.status == InstanceStatus.BANNED:
        parts.append("qBittorrent lifts its ban after its WebUI ban time (1 hour by default) or a restart")
    parts.append(how_to_retry(inst))
    return "; ".join(parts)


def empty_detail(inst: Instance) -> str:
    """The status detail of an instance whose password source gave nothing."""
    what = inst.password_from or "its password source"
    return f"{what} is empty; {how_to_retry(inst)}"


def how_to_retry(inst: Instance) -> str:
    """How to make magnetd log in again now, for the password source ``inst`` uses."""
    reload = f"or reload ({reload_command()}), to retry at once"
    if inst.password_source == "api_key_file":
        return f"make a new key (app/rotateAPIKey), write it to the key file, {reload}"
    if inst.password_source == "api_key_env":
        return "magnetd reads its environment only when it starts: restart it with the right key"
    if inst.password_source == "password_file":
        return f"fix the password, then save the password file or the config, {reload}"
    if inst.password_source == "password_env":
        return (
            "magnetd reads its environment only when it starts: restart it with the right value,"
            " or switch to password_file and save the config to retry at once"
        )
    if inst.password_source == "password_credential":
        return (
            "systemd hands credentials over only when the service starts: fix the file that"
            " LoadCredential= names, then `systemctl restart magnetd`"
        )
    return f"fix the password in the config and save it, {reload}"


def duration(seconds: float) -> str:
    """A wait in words: ``45 s``, ``10 min``, ``6 h 40 min``."""
    whole = max(0, round(seconds))
    if whole < 120:
        return f"{whole} s"
    if whole < 7200:
        return f"{round(whole / 60)} min"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
