"""Events: the state changes magnetd announces to people and programs, and their one body.

Pure: building an event reads the clock and the host name, nothing else. Every
kind of target (Apprise, webhook, command) gets the same body.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from magnetd import __version__
from magnetd.clock import now_iso


class EventName(StrEnum):
    """The events, by their stable names."""

    VPN_DOWN = "vpn_down"
    VPN_UP = "vpn_up"
    INSTANCE_DOWN = "instance_down"  # an instance left OK
    INSTANCE_UP = "instance_up"
    AUTH_FAILED = "auth_failed"  # AUTH_FAILED or BANNED
    HOLDING = "holding"  # files wait: nothing eligible can take them
    HELD_TOO_LONG = "held_too_long"  # the oldest waiting file passed notify.held_after; once per hold
    DRAINED = "drained"  # a hold ended
    FILE_FAILED = "file_failed"  # a digest
    FILE_SENT = "file_sent"  # a digest; only where a target lists it
    VPN_RECONNECT = "vpn_reconnect"  # vpn.reconnect_command ran
    TEST = "test"  # magnetd notify --test


DEFAULT_EVENTS = frozenset(EventName) - {EventName.FILE_SENT}
"""What a target without an ``events`` list gets."""


@dataclass(frozen=True)
class Event:
    """One announcement. Retries of its delivery keep its ``id``, so receivers can drop repeats."""

    name: EventName
    title: str
    message: str
    data: Mapping[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    timestamp: str = field(default_factory=now_iso)

    def body(self) -> dict[str, Any]:
        """The JSON object every target receives."""
        return {
            "event": str(self.name),
            "id": self.id,
            "timestamp": self.timestamp,
            "host": socket.gethostname(),
            "version": __version__,
            "title": self.title,
            "message": self.message,
            "data": dict(self.data),
        }


def wanted(name: EventName, events: frozenset[EventName] | None) -> bool:
    """Whether a target that chose ``events`` (None: the default set) gets ``name``."""
    if name == EventName.TEST:
        return True
    return name in (DEFAULT_EVENTS if events is None else events)
