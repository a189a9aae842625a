"""Plain data shared by the parsers, the client and the dispatcher.

Nothing here does I/O. Every type is frozen so that values can cross threads
and be used as dictionary keys without surprises.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class Entry:
    """One thing to add: a magnet or a whole ``.torrent`` file."""

    line: int
    torrent_id: str
    text: str
    magnet: Magnet | None = None
    torrent: bytes | None = field(default=None, repr=False)
    name: str | None = None


@dataclass(frozen=True)
class AddOptions:
    """Options for ``torrents/add``; ``None`` means "not set here"."""

    category: str | None = None
    savepath: str | None = None
    tags: tuple[str, ...] | None = None
    paused: bool | None = None

    def over(self, base: AddOptions) -> AddOptions:
        """These options, with every unset one taken from ``base``."""
        return AddOptions(
            category=self.category if self.category is not None else base.category,
            savepath=self.savepath if self.savepath is not None else base.savepath,
            tags=self.tags if self.tags is not None else base.tags,
            paused=self.paused if self.paused is not None else base.paused,
        )


@dataclass(frozen=True)
class Item:
    """What a dropped file holds: entries to add, entries refused, and the file's own options."""

    kind: str  # "magnet", "url", "json" or "torrent"
    entries: tuple[Entry, ...]
    rejects: tuple[LineError, ...] = ()
    options: AddOptions = AddOptions()


@dataclass(frozen=True)
class Seen:
    """A path the watcher noticed; ``how`` is "moved", "created", "closed", "modified", "scan",
    "dir" (a folder arrived: scan it) or "error" (events may be lost: rescan)."""

    path: Path
    how: str
