"""Plain data shared by the parsers, the client and the dispatcher.

Nothing here does I/O. Every type is frozen so that values can cross threads
and be used as dictionary keys without surprises.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from enum import IntEnum, StrEnum
from pathlib import Path


class ExitCode(IntEnum):
    """How a ``magnetd`` command ends."""

    OK = 0
    ERROR = 1
    USAGE = 2
    CONFIG = 78  # EX_CONFIG from sysexits.h: the unit does not restart on it (RestartPreventExitStatus)


class StatusCode(IntEnum):
    """How ``magnetd status`` exits, as monitoring plugins do (Nagios, Icinga, Docker HEALTHCHECK)."""

    OK = 0  # running, every instance OK
    DEGRADED = 1  # running, some instance not OK, but files can be sent
    HOLDING = 2  # running, and nothing can take files
    NOT_RUNNING = 3  # not running, or its status is stale


class InstanceStatus(StrEnum):
    """What an instance is doing; an HTTP answer of no other meaning is ``HTTP_<code>`` (see :meth:`http`)."""

    OK = "OK"
    VPN_DOWN = "VPN_DOWN"  # its VPN gate is down and it requires the VPN: not contacted at all
    DISCONNECTED = "DISCONNECTED"  # require_connection, and qBittorrent says it is "disconnected"
    AUTH_FAILED = "AUTH_FAILED"
    BANNED = "BANNED"
    TIMEOUT = "TIMEOUT"
    UNREACHABLE = "UNREACHABLE"  # connection refused, no route, DNS
    TLS_ERROR = "TLS_ERROR"
    NOT_CONFIGURED = "NOT_CONFIGURED"  # reserved: no password, not contacted; load() refuses empty sources
    UNKNOWN = "UNKNOWN"  # not probed yet, or an answer magnetd does not understand
    BUSY = "BUSY"  # healthy, but at its max_active: takes nothing until it has room
    LOW_SPACE = "LOW_SPACE"  # healthy, but under its min_free_space
    RATE_LIMITED = "RATE_LIMITED"  # healthy, but at its max_adds_per_minute for now

    @staticmethod
    def http(code: int) -> str:
        """The status of an unexpected HTTP answer, e.g. ``HTTP_404``."""
        return f"HTTP_{code}"


class GateStatus(StrEnum):
    """What a VPN gate is doing."""

    UP = "UP"
    DOWN = "DOWN"
    LEAK = "LEAK"  # public_ip_url answered the home address (not_ip)
    PING_NOT_PERMITTED = "PING_NOT_PERMITTED"
    ERROR = "ERROR"  # the check itself cannot work as configured (e.g. its API key is refused)


class FileKind(StrEnum):
    """The kinds of inbox file magnetd reads, named by their extension."""

    MAGNET = "magnet"
    URL = "url"
    JSON = "json"
    TORRENT = "torrent"

    @property
    def suffix(self) -> str:
        return "." + self.value

    @classmethod
    def of(cls, name: str) -> FileKind | None:
        """The kind of file ``name`` is by its extension (any case), or None if unsupported."""
        _, dot, ext = name.rpartition(".")
        return _FILE_KINDS.get(ext.lower()) if dot else None  # a dict: FileKind(ext) costs ~1 us


_FILE_KINDS = {kind.value: kind for kind in FileKind}


class FileOutcome(StrEnum):
    """How a file ended: the ``outcome`` label of ``magnetd_files_total``."""

    SENT = "sent"
    FAILED = "failed"
    PARTIAL = "partial"


class MagnetOutcome(StrEnum):
    """How one magnet ended: the ``outcome`` label of ``magnetd_magnets_total``."""

    ADDED = "added"
    ALREADY_PRESENT = "already_present"
    REJECTED = "rejected"


class Arrival(StrEnum):
    """How a path came to the watcher's notice."""

    MOVED = "moved"  # renamed into the inbox: complete
    CREATED = "created"  # may still be being written
    CLOSED = "closed"  # its writer closed it: complete
    MODIFIED = "modified"
    SCAN = "scan"  # found by a full scan
    DIR = "dir"  # a folder arrived: scan it, its files bring no events
    ERROR = "error"  # events may have been lost: rescan

    @property
    def complete(self) -> bool:
        """Whether a file that arrived this way is known to be fully written."""
        return self in (Arrival.MOVED, Arrival.CLOSED)


@dataclass(frozen=True, slots=True)
class LineError:
    """One entry of a file that can never be sent, and why.

    ``line`` is 1-based: the line number for ``.magnet``/``.url`` files, the
    position in the ``magnets`` list for ``.json`` queue files, 1 for ``.torrent``.
    ``text`` is the entry exactly as it stood, so it can be written back to a
    file in ``failed/`` and retried later.
    """

    line: int
    reason: str
    detail: str
    text: str = ""


class Rejected(Exception):
    """A whole file that can never be sent: a short ``reason`` code and a human ``detail``."""

    def __init__(self, reason: str, detail: str, lines: Sequence[LineError] = ()) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.lines: tuple[LineError, ...] = tuple(lines)


@dataclass(frozen=True, slots=True)
class Magnet:
    """A parsed magnet link.

    ``uri`` is what is sent to qBittorrent (a bare hash becomes
    ``magnet:?xt=urn:btih:<hex>``). ``torrent_id`` is the id qBittorrent lists
    the torrent under: the first 40 hex digits of the SHA-256 digest for a
    magnet with a ``btmh`` hash, else the ``btih`` as lower-case hex.
    """

    uri: str
    torrent_id: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    """One thing to add: a magnet, a whole ``.torrent`` file, or a link to fetch one.

    ``link`` is an ``http(s)://`` URL not fetched yet: its ``torrent_id`` is empty
    until :mod:`magnetd.delivery.fetcher` brings back a torrent or a magnet.
    """

    line: int
    torrent_id: str
    text: str
    magnet: Magnet | None = None
    torrent: bytes | None = field(default=None, repr=False)
    name: str | None = None
    link: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class AddOptions:
    """Options for ``torrents/add``; ``None`` means "not set here".

    The names are magnetd's config keys; :func:`magnetd.delivery.form.options_form`
    maps them to qBittorrent's form fields.
    """

    category: str | None = None
    savepath: str | None = None
    tags: tuple[str, ...] | None = None
    paused: bool | None = None
    skip_checking: bool | None = None
    sequential: bool | None = None
    first_last_piece: bool | None = None
    content_layout: str | None = None  # Original, Subfolder, NoSubfolder
    auto_tmm: bool | None = None
    rename: str | None = None
    ratio_limit: float | None = None  # -2: the global limit, -1: none
    seeding_time_limit: int | None = None  # minutes; -2: the global limit, -1: none
    up_limit: int | None = None  # bytes/s; 0: unlimited
    dl_limit: int | None = None  # bytes/s; 0: unlimited
    stop_condition: str | None = None  # None, MetadataReceived, FilesChecked

    def over(self, base: AddOptions) -> AddOptions:
        """These options, with every unset one taken from ``base``."""
        if self is NO_OPTIONS:  # nothing set: ``base`` as it is (most files have no options)
            return base
        mine = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}
        return replace(base, **mine)


NO_OPTIONS = AddOptions()
"""Every option unset: the one instance files without options of their own share (it is
immutable, and thousands of waiting files each made their own)."""


@dataclass(frozen=True, slots=True)
class Item:
    """What a dropped file holds: entries to add, entries refused, and the file's own options."""

    kind: FileKind
    entries: tuple[Entry, ...]
    rejects: tuple[LineError, ...] = ()
    options: AddOptions = NO_OPTIONS
    links: int = 0  # entries that are links still to fetch: 0 for every file of magnets only


@dataclass(frozen=True, slots=True)
class Seen:
    """A path the watcher noticed, and how (a file's path from the inotify reader is text: no
    ``Path`` is made for each of a large drop's events)."""

    path: Path | str
    how: Arrival
