"""A failed HTTP exchange in a few words: read from the exception chain's types and errno.

``requests`` wraps ``urllib3``, which wraps the socket's own error, and each
layer's message repeats the one below (``HTTPConnectionPool(host=..., port=...):
Max retries exceeded ...``). :func:`describe` walks that chain and names what
happened (``connection refused by 127.0.0.1:8080``, ``cannot resolve name
qbt.lan``) without reading any message text; the raw text is for debug logs only.
"""

from __future__ import annotations

import errno
import http.client
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import ReadTimeoutError

from magnetd.address import is_loopback
from magnetd.model import InstanceStatus

E = TypeVar("E", bound=BaseException)

_CHAIN_LIMIT = 32  # links followed at most: a chain is a handful, a cycle is not followed forever

# errno → what happened, for the errors a type does not already say
_ERRNO_WORDS = {
    errno.ECONNREFUSED: "connection refused by {where}",
    errno.EHOSTUNREACH: "no route to host {where}",
    errno.ENETUNREACH: "network unreachable for {where}",
    errno.ECONNRESET: "connection reset by {where}",
    errno.ECONNABORTED: "connection to {where} aborted",
    errno.ETIMEDOUT: "connection to {where} timed out",
    errno.EADDRNOTAVAIL: "cannot connect to {where}: address not available here",
    errno.EPIPE: "connection to {where} broken",
    errno.EACCES: "connection to {where} not permitted (a firewall or sandbox rule)",
    errno.EPERM: "connection to {where} not permitted (a firewall or sandbox rule)",
}
_TYPE_WORDS: tuple[tuple[type[OSError], str], ...] = (
    (ConnectionRefusedError, _ERRNO_WORDS[errno.ECONNREFUSED]),
    (ConnectionResetError, _ERRNO_WORDS[errno.ECONNRESET]),
    (ConnectionAbortedError, _ERRNO_WORDS[errno.ECONNABORTED]),
)


@dataclass(frozen=True)
class Endpoint:
    """The host and port a WebUI URL points at, as messages show it."""

    host: str
    port: int

    @classmethod
    def of(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:  # a port out of range: the request itself will fail on it
            port = None
        default = 443 if parts.scheme == "https" else 80
        return cls(parts.hostname or "", port if port is not None else default)

    @property
    def loopback(self) -> bool:
        """Whether the host is this machine: ``localhost`` or a loopback address."""
        return is_loopback(self.host)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it wraps: in ``args``, ``reason``, ``__cause__``, ``__context__``."""
    todo, seen = [exc], set[int]()
    while todo and len(seen) < _CHAIN_LIMIT:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [*current.args, getattr(current, "reason", None), current.__cause__, current.__context__]
        todo.extend(link for link in linked if isinstance(link, BaseException))


def find(exc: BaseException, kind: type[E]) -> E | None:
    """The first exception of type ``kind`` in ``exc``'s chain."""
    return next((link for link in chain(exc) if isinstance(link, kind)), None)


def describe(exc: requests.exceptions.RequestException, where: Endpoint, timeout: float) -> tuple[str, str]:
    """The instance status and a short human detail for a failed request."""
    if isinstance(exc, requests.exceptions.SSLError):
        return InstanceStatus.TLS_ERROR, tls_detail(exc, where)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        detail = f"no connection to {where} within {timeout:g} s (the host is down, or a firewall drops it)"
        return InstanceStatus.TIMEOUT, detail
    if isinstance(exc, requests.exceptions.Timeout) or find(exc, ReadTimeoutError):
        return InstanceStatus.TIMEOUT, f"{where} took the connection but did not answer within {timeout:g} s"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return InstanceStatus.UNREACHABLE, unreachable_detail(exc, where)
    return InstanceStatus.UNKNOWN, f"request to {where} failed ({type(exc).__name__}): {exc}"


def unreachable_detail(exc: BaseException, where: Endpoint) -> str:
    """Why no connection could be made or kept, e.g. ``connection refused by 127.0.0.1:8080``."""
    if find(exc, http.client.RemoteDisconnected):
        return f"{where} closed the connection without answering"
    if find(exc, socket.gaierror):
        return f"cannot resolve name {where.host}"
    for link in chain(exc):
        if not isinstance(link, OSError) or isinstance(link, requests.exceptions.RequestException):
            continue
        for kind, words in _TYPE_WORDS:
            if isinstance(link, kind):
                return words.format(where=where)
        if link.errno in _ERRNO_WORDS:
            return _ERRNO_WORDS[link.errno].format(where=where)
        if link.errno is not None:
            return f"cannot connect to {where} ({errno.errorcode.get(link.errno, link.errno)})"
    return f"cannot connect to {where}"


def tls_detail(exc: BaseException, where: Endpoint) -> str:
    """Why TLS failed: an untrusted certificate, or a handshake that did not work."""
    cert = find(exc, ssl.SSLCertVerificationError)
    if cert is not None:
        what = cert.verify_message or "not trusted"
        return f"the certificate of {where} is not accepted: {what} (give verify_tls its CA bundle)"
    failed = find(exc, ssl.SSLError)
    if failed is not None and failed.reason == "WRONG_VERSION_NUMBER":
        return f"{where} does not speak TLS (is it plain http://?)"
    if failed is not None and failed.reason:
        return f"TLS handshake with {where} failed ({failed.reason})"
    return f"TLS handshake with {where} failed"
