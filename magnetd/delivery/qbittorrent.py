"""A small client for qBittorrent's WebUI API v2 (4.x and 5.x).

One :class:`Client` talks to one qBittorrent instance; it is a :class:`Connection`
(:mod:`magnetd.delivery.connection`: the login or API key, the back-off after a
refused login, the requests sent). Errors that make the whole instance unusable are
raised as :class:`InstanceError` with a short ``status`` code; an item qBittorrent
refuses (a broken ``.torrent``) is raised as :class:`ItemRejected`.

This module logs nothing: its callers do. No text it produces contains the
password or a cookie value.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import requests

from magnetd.delivery.connection import Connection, InstanceError, excerpt
from magnetd.delivery.form import encode, hashes_form, options_form
from magnetd.delivery.listing import lists_all
from magnetd.model import AddOptions, InstanceStatus

PRESENT_SLICE = 1000
"""Hashes per ``torrents/info`` call when verifying: qBittorrent's cost is per torrent listed
either way, and a slice's answer (~1 KB per torrent) is dropped before the next is asked."""
_ADD_STATUSES = (200, 202, 204, 409, 415)  # torrents/add answers read by _add_answer (409, 415: 5.2+)
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class ItemRejected(Exception):
    """qBittorrent refused this one item (e.g. 415 for a broken ``.torrent``)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class AddAnswer:
    """What ``torrents/add`` answered.

    ``accepted`` is True when qBittorrent took at least one item (``Ok.``, or a
    5.2+ JSON answer with a success or pending count); ``added_ids`` lists the
    lower-case ids a 5.2+ answer names.
    """

    accepted: bool
    added_ids: tuple[str, ...] = ()


def redact_url(url: str) -> str:
    """``url`` without any ``user:password@`` part, for messages."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def upload_name(filename: str) -> str:
    """A plain ASCII file name for the multipart upload of ``filename``."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    safe = _UNSAFE_NAME.sub("_", base).strip("._")
    if not safe:
        safe = "upload"
    return safe if safe.endswith(".torrent") else f"{safe}.torrent"


def matches(torrent: Mapping[str, Any]) -> set[str]:
    """The lower-case 40-hex ids one ``torrents/info`` object can be found under."""
    found = set()
    for key in ("hash", "infohash_v1", "infohash_v2"):
        value = torrent.get(key)
        if isinstance(value, str) and len(value) >= 40:
            found.add(value[:40].lower())
    return found


class ClientApi(Protocol):
    """The calls the dispatcher, prober, ledger and courier make: a :class:`Client`, or a test's fake."""

    def version(self) -> str: ...
    def app_version(self) -> str: ...
    def connection_status(self) -> str: ...
    def add_magnets(self, uris: Sequence[str], options: AddOptions) -> AddAnswer: ...
    def add_torrent(self, filename: str, data: bytes, options: AddOptions) -> AddAnswer: ...
    def present(self, ids: Collection[str], per_call: int = ...) -> set[str]: ...


class Client(Connection):
    """A thread-safe client for one qBittorrent instance."""

    def __repr__(self) -> str:
        return f"Client(url={redact_url(self.url)!r}, username={self.username!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # public calls: each holds the lock for its whole duration

    def version(self) -> str:
        """The WebAPI version (``app/webapiVersion``); also the health probe."""
        with self._lock:
            return self._call("GET", "app/webapiVersion").text.strip()

    def app_version(self) -> str:
        """qBittorrent's own version (``app/version``, e.g. ``v5.3.0``); asked again after a new login."""
        with self._lock:
            if not self._app_version:
                self._app_version = self._call("GET", "app/version").text.strip()
            return self._app_version

    def connection_status(self) -> str:
        """``transfer/info``'s ``connection_status``: connected, firewalled or disconnected."""
        with self._lock:
            response = self._call("GET", "transfer/info")
        try:
            return str(response.json().get("connection_status", ""))
        except (ValueError, AttributeError):
            return ""

    def add_magnets(self, uris: Sequence[str], options: AddOptions) -> AddAnswer:
        """Add magnet links in one request; an empty list sends nothing."""
        if not uris:
            return AddAnswer(accepted=False)
        form = options_form(options)
        form["urls"] = "\n".join(uris)
        body = encode(form)
        with self._lock:
            response = self._call("POST", "torrents/add", _ADD_STATUSES, data=body, headers=_FORM)
            return self._add_answer(response, "magnet links")

    def add_torrent(self, filename: str, data: bytes, options: AddOptions) -> AddAnswer:
        """Add one ``.torrent`` file; raises :class:`ItemRejected` when it is invalid."""
        files = {"torrents": (upload_name(filename), data, "application/x-bittorrent")}
        form = options_form(options)
        with self._lock:
            response = self._call("POST", "torrents/add", _ADD_STATUSES, data=form, files=files)
            return self._add_answer(response, filename)

    def present(self, ids: Collection[str], per_call: int = PRESENT_SLICE) -> set[str]:
        """The subset of ``ids`` (lower-cased) that qBittorrent lists.

        Asked ``per_call`` at a time: qBittorrent's cost is per torrent listed either
        way, and each answer's objects are dropped before the next. A check for what
        is there before adding (an answer mostly empty) asks for more at once, as
        each call also costs qBittorrent a pass over every torrent it holds.
        An id already in lower case comes back as the caller's own string (a large
        drop keeps every verified id until its batch lands).
        """
        own = ids if isinstance(ids, set) else set(ids)
        joined = "".join(own)
        if joined == joined.lower():  # the usual case: ids as magnetd writes them
            return self._present(own, per_call)
        lowered = {i.lower(): i for i in own}
        found = self._present(set(lowered), per_call)
        return {mine if mine == low else low for low, mine in lowered.items() if low in found}

    def _present(self, wanted: set[str], per_call: int) -> set[str]:
        """The ids of ``wanted`` (lower case) listed, in calls of ``per_call`` ids."""
        if len(wanted) <= per_call:
            return self._listed(wanted) if wanted else set()
        ordered = sorted(wanted)
        found: set[str] = set()
        for start in range(0, len(ordered), per_call):
            found |= self._listed(set(ordered[start : start + per_call]))
        return found

    def _listed(self, part: set[str]) -> set[str]:
        """The ids of ``part`` (lower case, not empty) that one ``torrents/info`` call lists.

        When the answer's raw text names every one (the usual verification), it is not
        decoded; otherwise the decoded objects decide (see :mod:`magnetd.delivery.listing`).
        """
        with self._lock:
            response = self._call("POST", "torrents/info", data=hashes_form(part), headers=_FORM)
            if lists_all(response.content, part):
                return set(part)
            found: set[str] = set()
            for torrent in self._torrent_list(response):
                found |= matches(torrent)
            return {i for i in part if i in found}  # the caller's own strings

    def torrents(self, ids: Collection[str]) -> list[dict[str, Any]]:
        """The raw ``torrents/info`` objects for ``ids``; no ids, no request."""
        if not ids:
            return []
        form = hashes_form({i.lower() for i in ids})
        with self._lock:
            return self._torrent_list(self._call("POST", "torrents/info", data=form, headers=_FORM))

    def filtered(self, state_filter: str) -> list[dict[str, Any]]:
        """``torrents/info?filter=…``: qBittorrent applies the filter before its per-torrent cost."""
        with self._lock:
            return self._torrent_list(self._call("POST", "torrents/info", data={"filter": state_filter}))

    def free_space(self) -> int:
        """``server_state.free_space_on_disk`` of ``sync/maindata`` (costly: seconds on big instances).

        Sent on a connection of its own, without the lock adds and verifications hold,
        so sends to this instance never wait behind it.
        """
        with self._side_lock:
            response = self._side_call("GET", "sync/maindata", params={"rid": "0"})
        data = self._json(response, "sync/maindata")
        state = data.get("server_state") if isinstance(data, dict) else None
        free = state.get("free_space_on_disk") if isinstance(state, dict) else None
        return int(free) if isinstance(free, int | float) else -1

    # internals: called with the lock held

    def _add_answer(self, response: requests.Response, what: str) -> AddAnswer:
        """Read what ``torrents/add`` answered."""
        code = response.status_code
        if code == 415:
            raise ItemRejected("INVALID_TORRENT", f"{what}: {excerpt(response)}")
        if code == 409:
            return AddAnswer(accepted=False)
        if code == 204:
            return AddAnswer(accepted=True)
        body = response.text.strip()
        if body in ("Ok.", "Fails."):
            return AddAnswer(accepted=body == "Ok.")
        return self._json_add_answer(response)

    def _json_add_answer(self, response: requests.Response) -> AddAnswer:
        """Read a 5.2+ JSON answer of ``torrents/add``."""
        data = self._json(response, "torrents/add")
        if not isinstance(data, dict):
            raise self._fail(
                InstanceError(InstanceStatus.UNKNOWN, f"torrents/add answered: {excerpt(response)}")
            )
        counts = [data.get(k) for k in ("success_count", "pending_count")]
        accepted = any(isinstance(n, int) and n > 0 for n in counts)
        raw_ids = data.get("added_torrent_ids") or []
        ids = tuple(str(i).lower() for i in raw_ids) if isinstance(raw_ids, list) else ()
        return AddAnswer(accepted=accepted or bool(ids), added_ids=ids)

    def _torrent_list(self, response: requests.Response) -> list[dict[str, Any]]:
        """The list of objects ``torrents/info`` answered."""
        data = self._json(response, "torrents/info")
        if not isinstance(data, list) or not all(isinstance(t, dict) for t in data):
            raise self._fail(
                InstanceError(InstanceStatus.UNKNOWN, f"torrents/info answered: {excerpt(response)}")
            )
        return data

    def _json(self, response: requests.Response, path: str) -> Any:
        try:
            return response.json()
        except ValueError:
            detail = f"{path} answered no JSON: {excerpt(response)}"
            raise self._fail(InstanceError(InstanceStatus.UNKNOWN, detail)) from None


__all__ = [
    "PRESENT_SLICE",
    "AddAnswer",
    "Client",
    "ClientApi",
    "InstanceError",
    "ItemRejected",
    "matches",
    "redact_url",
    "upload_name",
]  # InstanceError: every call raises it, and its callers import it from here
