"""Fetch links to ``.torrent`` files, on a few worker threads of their own.

:func:`fetch_link` is the whole exchange for one link: at most
:data:`MAX_REDIRECTS` redirects followed by hand (one to ``magnet:`` is that
magnet), the body read up to ``limits.max_torrent_bytes``, the whole of it
bounded by ``limits.fetch_timeout``, and the body checked to be a torrent.
:class:`Fetcher` runs it off the supervisor's thread, which only hands links
over and picks the results up later. Nothing here touches a file, and every
text it returns shows a link through :func:`~magnetd.intake.links.shown`.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import requests
import urllib3.exceptions

from magnetd import __version__
from magnetd.intake import items
from magnetd.intake.links import FetchLimits, is_link, shown
from magnetd.model import Rejected

MAX_REDIRECTS = 5
"""Redirects followed before a link fails: Prowlarr and Jackett answer with one, a tracker's
download link behind a CDN two or three."""
WORKERS = 4
"""Fetches at once: enough for a burst of RSS grabs, few enough not to hammer one indexer."""
CHUNK = 64 * 1024

FETCH_FAILED = "fetch_failed"
NOT_A_TORRENT = "not_a_torrent"
TOO_LARGE = "too_large"
_MAGNET = "magnet:"


@dataclass(frozen=True)
class Fetch:
    """What fetching one link brought back: a torrent, a magnet, or a failure (``reason``).

    ``transient``: a timeout, a connection error or a 5xx, worth another try later.
    """

    body: bytes | None = field(default=None, repr=False)
    torrent_id: str = ""
    name: str | None = None
    magnet: str | None = field(default=None, repr=False)
    reason: str | None = None
    detail: str = ""
    transient: bool = False


class _Stop(Exception):
    """Reading a body ended early: carries the Fetch to return."""

    def __init__(self, fetch: Fetch) -> None:
        super().__init__(fetch.detail)
        self.fetch = fetch


def _failed(detail: str, reason: str = FETCH_FAILED, transient: bool = False) -> Fetch:
    return Fetch(reason=reason, detail=detail, transient=transient)


def fetch_link(url: str, limits: FetchLimits, clock: Callable[[], float] = time.monotonic) -> Fetch:
    """Fetch ``url`` and check what it answers; never raises for anything the server does."""
    deadline = clock() + limits.fetch_timeout
    with requests.Session() as session:
        session.headers["User-Agent"] = f"magnetd/{__version__}"
        try:
            return _follow(session, url, limits, deadline, clock)
        except _Stop as stop:
            return stop.fetch


def _follow(
    session: requests.Session,
    url: str,
    limits: FetchLimits,
    deadline: float,
    clock: Callable[[], float],
) -> Fetch:
    seen = {url}
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        response = _get(session, current, deadline, clock)
        with response:
            location = response.headers.get("Location") if response.is_redirect else None
            if location is None:
                return _answer(response, current, limits, deadline, clock)
        target = urljoin(current, location.strip())
        if target[: len(_MAGNET)].lower() == _MAGNET:
            return Fetch(magnet=target)
        if not is_link(target):
            scheme = target.split(":", 1)[0][:16]
            return _failed(f"{shown(current)} redirected to a {scheme!r} link; only http(s) is fetched")
        if target in seen:
            return _failed(f"{shown(current)} redirected in a loop (back to {shown(target)})")
        seen.add(target)
        current = target
    return _failed(f"{shown(url)} redirected more than {MAX_REDIRECTS} times")


def _get(
    session: requests.Session, url: str, deadline: float, clock: Callable[[], float]
) -> requests.Response:
    remaining = _remaining(url, deadline, clock)
    try:
        return session.get(url, stream=True, allow_redirects=False, timeout=(remaining, remaining))
    except requests.Timeout:
        raise _Stop(_failed(f"{shown(url)} did not answer in time", transient=True)) from None
    except requests.ConnectionError as exc:
        detail = f"{shown(url)}: cannot connect ({_why(exc)})"
        raise _Stop(_failed(detail, transient=True)) from None
    except requests.RequestException as exc:  # an invalid URL, a bad header: trying again cannot help
        raise _Stop(_failed(f"{shown(url)}: {type(exc).__name__}")) from None


def _remaining(url: str, deadline: float, clock: Callable[[], float]) -> float:
    remaining = deadline - clock()
    if remaining <= 0:
        raise _Stop(_failed(f"{shown(url)}: the fetch took longer than limits.fetch_timeout", transient=True))
    return remaining


def _why(exc: Exception) -> str:
    """A connection error in a few words, without the URL requests puts in its message."""
    text = str(exc)
    for words in ("Connection refused", "Name or service not known", "No route to host", "reset by peer"):
        if words.lower() in text.lower():
            return words.lower()
    return type(exc).__name__


def _answer(
    response: requests.Response,
    url: str,
    limits: FetchLimits,
    deadline: float,
    clock: Callable[[], float],
) -> Fetch:
    """A final (non-redirect) answer: its status, then its body."""
    code = response.status_code
    if code >= 500:
        return _failed(f"{shown(url)} answered HTTP {code}", transient=True)
    if not 200 <= code < 300:
        return _failed(f"{shown(url)} answered HTTP {code}")
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limits.max_torrent_bytes:
        limit = limits.max_torrent_bytes
        detail = f"{shown(url)} announced {declared} bytes, over limits.max_torrent_bytes ({limit}); not read"
        return _failed(detail, TOO_LARGE)
    body = _read(response, url, limits.max_torrent_bytes, deadline, clock)
    return _torrent(body, url, code)


def _read(
    response: requests.Response, url: str, limit: int, deadline: float, clock: Callable[[], float]
) -> bytes:
    """The body, chunk by chunk, each read bounded by what is left of the deadline."""
    raw: Any = response.raw
    chunks: list[bytes] = []
    total = 0
    while True:
        _bound(raw, _remaining(url, deadline, clock))
        try:
            chunk = raw.read1(CHUNK, decode_content=True)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            timeout = isinstance(exc, (urllib3.exceptions.ReadTimeoutError, TimeoutError))
            what = "stopped sending in time" if timeout else f"broke off ({type(exc).__name__})"
            raise _Stop(_failed(f"{shown(url)} {what}", transient=True)) from None
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > limit:
            detail = f"{shown(url)} sent over limits.max_torrent_bytes ({limit}); stopped reading"
            raise _Stop(_failed(detail, TOO_LARGE))
        chunks.append(chunk)


def _bound(raw: Any, seconds: float) -> None:
    """Let the next socket read wait at most ``seconds`` (urllib3 keeps the socket on the connection)."""
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    if sock is not None:
        sock.settimeout(max(seconds, 0.001))


def _torrent(body: bytes, url: str, code: int) -> Fetch:
    """The body as a torrent, identified as an inbox ``.torrent`` is, or ``not_a_torrent``."""
    try:
        item = items.parse_item("link.torrent", body)
    except Rejected as exc:
        detail = (
            f"{shown(url)} answered HTTP {code} with {len(body)} bytes that are not a torrent ({exc.detail})"
        )
        return _failed(detail, NOT_A_TORRENT)
    entry = item.entries[0]
    return Fetch(body=body, torrent_id=entry.torrent_id, name=entry.name)


class Fetcher:
    """A few daemon threads that fetch links; each result comes in a future, then ``done`` is called.

    The threads start with the first link, so a daemon that never sees one runs none.
    """

    def __init__(
        self,
        limits: FetchLimits,
        done: Callable[[], None],
        workers: int = WORKERS,
        fetch: Callable[[str, FetchLimits], Fetch] = fetch_link,
    ) -> None:
        self.limits = limits
        self.done = done
        self.workers = workers
        self.fetch = fetch
        self._queue: queue.SimpleQueue[tuple[str, Future[Fetch]] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def submit(self, url: str) -> Future[Fetch]:
        """Fetch ``url`` on a worker; the future holds the Fetch."""
        future: Future[Fetch] = Future()
        if not self._threads and not self._closed:
            self._start()
        self._queue.put((url, future))
        return future

    def _start(self) -> None:
        for number in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"magnetd-fetch-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _work(self) -> None:
        while (task := self._queue.get()) is not None:
            url, future = task
            if self._closed:
                future.cancel()
                continue
            try:
                future.set_result(self.fetch(url, self.limits))
            except Exception as exc:  # a bug: the loop fails that link as internal_error
                future.set_exception(exc)
            self.done()

    def close(self) -> None:
        """Stop taking links; a fetch under way ends within its timeout, its result unused."""
        self._closed = True
        for _ in self._threads:
            self._queue.put(None)
