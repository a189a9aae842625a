"""The status endpoint: a small WSGI app (health, readiness, metrics, status, add, retry, dashboard).

The app talks to the daemon only through :class:`Backend`, whose calls read
memory or write one inbox file; it never waits on a send.
:class:`~magnetd.telemetry.server.WebServer` runs it under waitress on its own
thread (it, :func:`parse_listen` and :func:`is_loopback` are importable from
here too).

Auth: with a token configured, every path but ``/healthz`` and ``/readyz``
needs ``Authorization: Bearer TOKEN`` (compared in constant time); the
dashboard page also accepts ``/?token=TOKEN`` and sends the token in a header
with its own requests. ``POST /api/add`` is refused (403) unless a token is set.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.resources
import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import parse_qs
from wsgiref.types import StartResponse, WSGIEnvironment

from magnetd import logs
from magnetd.address import is_loopback, parse_listen
from magnetd.clock import now_iso
from magnetd.model import FileKind
from magnetd.telemetry.bodies import MAX_BODY, BadBody, check_add, retry_names
from magnetd.telemetry.metrics import Metrics
from magnetd.telemetry.server import WebServer

__all__ = [
    "Backend",
    "HttpError",
    "Request",
    "Response",
    "WebApp",
    "WebServer",
    "healthz_limit",
    "is_loopback",
    "parse_listen",
]

log = logs.get("magnetd.telemetry.web")

HEALTHZ_FLOOR = 30.0
"""``/healthz`` fails once the main loop has been silent this long, or 3 probe intervals if longer."""


def healthz_limit(probe_interval: float) -> float:
    """Seconds of main-loop silence after which ``/healthz`` answers 503."""
    return max(HEALTHZ_FLOOR, 3 * probe_interval)


class Backend(Protocol):
    """What the endpoint asks of the daemon. Every call must be quick and thread-safe."""

    def status(self) -> dict[str, Any]:
        """The ``magnetd status --json`` object plus ``recent``: the last outcomes, newest first,
        each ``{file, outcome, reason, instance, at}``."""

    def heartbeat_age(self) -> float:
        """Seconds since the main loop last ticked."""

    def healthz_limit(self) -> float:
        """Seconds of silence after which the loop counts as stuck (see :func:`healthz_limit`)."""

    def ready(self) -> tuple[bool, str]:
        """Whether some instance could take a file now, and if not why (e.g. ``no instance is OK``)."""

    def add(self, data: bytes, kind: FileKind) -> str:
        """Write ``data`` (already checked) into the inbox as a ``kind`` file, atomically, as
        ``magnetd add`` does; return the file's name. Raise ValueError for input it refuses."""

    def retry(self, names: Sequence[str]) -> list[str]:
        """Move these files (relative to ``failed/``; none: all) back into the inbox, as
        ``magnetd retry`` does; return the inbox names they got."""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


class HttpError(Exception):
    def __init__(
        self, status: int, reason: str, detail: str = "", headers: Sequence[tuple[str, str]] = ()
    ) -> None:
        super().__init__(reason)
        self.response = _json(status, {"error": reason, "detail": detail} if detail else {"error": reason})
        self.headers = tuple(headers)


def _json(status: int, value: Any) -> Response:
    return Response(status, json.dumps(value, indent=1).encode("utf-8") + b"\n")


def _text(status: int, text: str) -> Response:
    return Response(status, text.encode("utf-8"), "text/plain; charset=utf-8")


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    environ: WSGIEnvironment

    def header(self, name: str) -> str:
        return str(self.environ.get("HTTP_" + name.upper().replace("-", "_"), ""))

    def query(self, name: str) -> str | None:
        try:
            values = parse_qs(str(self.environ.get("QUERY_STRING", "")), max_num_fields=20).get(name)
        except ValueError:  # too many fields
            return None
        return values[0] if values else None

    def body(self) -> bytes:
        """The request body, or 413 above :data:`MAX_BODY` (judged by Content-Length before reading)."""
        try:
            length = int(self.environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise HttpError(HTTPStatus.BAD_REQUEST, "bad_content_length") from None
        if length > MAX_BODY:
            raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "too_large", f"bodies over {MAX_BODY} bytes")
        data: bytes = self.environ["wsgi.input"].read(length if length > 0 else MAX_BODY + 1)
        if len(data) > MAX_BODY:
            raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "too_large", f"bodies over {MAX_BODY} bytes")
        return data


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Route:
    methods: frozenset[str]
    handler: Handler
    public: bool = False  # answers without the token
    query_token: bool = False  # accepts ?token= (the dashboard page only)


def _dashboard() -> tuple[bytes, str]:
    """The page, and a Content-Security-Policy that allows exactly its inline script and style."""
    page = importlib.resources.files("magnetd.telemetry").joinpath("dashboard.html").read_bytes()

    def hashes(tag: str) -> str:
        blocks = re.findall(rb"<" + tag.encode() + rb">(.*?)</" + tag.encode() + rb">", page, re.S)
        return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b).digest()).decode()}'" for b in blocks)

    policy = (
        f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; "
        "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return page, policy


class WebApp:
    """The WSGI application; ``token`` None means no auth (and no ``POST /api/add``); "" is refused."""

    def __init__(self, backend: Backend, metrics: Metrics, token: str | None) -> None:
        self._backend = backend
        self._metrics = metrics
        if token is not None and not token.strip():
            raise ValueError("the http token is empty: set one, or none at all")
        self._token = token.encode("utf-8") if token is not None else None
        self._page, self._policy = _dashboard()
        get = frozenset({"GET", "HEAD"})
        post = frozenset({"POST"})
        self.routes: dict[str, Route] = {
            "/healthz": Route(get, self._healthz, public=True),
            "/readyz": Route(get, self._readyz, public=True),
            "/metrics": Route(get, self._scrape),
            "/api/status": Route(get, self._status),
            "/api/add": Route(post, self._add),
            "/api/retry": Route(post, self._retry),
            "/": Route(get, self._page_response, query_token=True),
        }

    # -- WSGI ------------------------------------------------------------------------------------

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = time.monotonic()
        request = Request(
            str(environ.get("REQUEST_METHOD", "GET")), str(environ.get("PATH_INFO", "")), environ
        )
        response = self._respond(request)
        headers = [
            ("Content-Type", response.content_type),
            ("Content-Length", str(len(response.body))),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
            *response.headers,
        ]
        start_response(f"{response.status} {HTTPStatus(response.status).phrase}", headers)
        log.debug(
            "http_request",
            method=request.method[:16],
            path=request.path[:200],  # PATH_INFO: never the query string
            status=int(response.status),
            ms=round((time.monotonic() - started) * 1000, 1),
        )
        return [b"" if request.method == "HEAD" else response.body]

    def _respond(self, request: Request) -> Response:
        route = self.routes.get(request.path)
        try:
            if route is None:
                raise HttpError(HTTPStatus.NOT_FOUND, "not_found")
            if request.method not in route.methods:
                allow = ", ".join(sorted(route.methods))
                raise HttpError(
                    HTTPStatus.METHOD_NOT_ALLOWED, "method_not_allowed", headers=[("Allow", allow)]
                )
            if not route.public and not self._authorized(request, route.query_token):
                raise HttpError(
                    HTTPStatus.UNAUTHORIZED, "unauthorized", headers=[("WWW-Authenticate", "Bearer")]
                )
            return route.handler(request)
        except HttpError as exc:
            r = exc.response
            if route is not None and route.query_token and r.status == HTTPStatus.UNAUTHORIZED:
                r = _text(r.status, "magnetd: this dashboard needs the token: open /?token=TOKEN\n")
            return Response(r.status, r.body, r.content_type, exc.headers)
        except Exception as exc:  # a backend bug must not take the endpoint down
            log.warning("http_handler_failed", path=request.path[:200], error=repr(exc))
            return _json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal_error"})

    def _authorized(self, request: Request, query_token: bool) -> bool:
        if self._token is None:
            return True
        offered: list[str] = []
        scheme, _, value = request.header("Authorization").partition(" ")
        if scheme.lower() == "bearer":
            offered.append(value.strip())
        if query_token and (given := request.query("token")) is not None:
            offered.append(given)
        return any(hmac.compare_digest(o.encode("utf-8"), self._token) for o in offered)

    # -- handlers --------------------------------------------------------------------------------

    def _healthz(self, request: Request) -> Response:
        age, limit = self._backend.heartbeat_age(), self._backend.healthz_limit()
        if age <= limit:
            return _text(HTTPStatus.OK, "ok\n")
        return _text(HTTPStatus.SERVICE_UNAVAILABLE, f"stuck: the main loop has not ticked for {age:.0f}s\n")

    def _readyz(self, request: Request) -> Response:
        ready, reason = self._backend.ready()
        if ready:
            return _json(HTTPStatus.OK, {"ready": True})
        return _json(HTTPStatus.SERVICE_UNAVAILABLE, {"ready": False, "reason": reason})

    def _scrape(self, request: Request) -> Response:
        body, content_type = self._metrics.exposition(request.header("Accept"))
        return Response(HTTPStatus.OK, body, content_type)

    def _status(self, request: Request) -> Response:
        status = dict(self._backend.status())
        status.setdefault("served_at", now_iso())
        return _json(HTTPStatus.OK, status)

    def _add(self, request: Request) -> Response:
        if self._token is None:
            raise HttpError(HTTPStatus.FORBIDDEN, "add_needs_token", "configure http.token_* to allow adds")
        data = request.body()
        try:
            kind = check_add(data, str(request.environ.get("CONTENT_TYPE", "")))
            name = self._backend.add(data, kind)
        except BadBody as exc:
            return _json(HTTPStatus.BAD_REQUEST, exc.to_dict())
        except ValueError as exc:
            return _json(HTTPStatus.BAD_REQUEST, {"error": "refused", "detail": str(exc)})
        log.info("http_add", file=name, kind=str(kind))
        return _json(HTTPStatus.ACCEPTED, {"file": name})

    def _retry(self, request: Request) -> Response:
        try:
            names = retry_names(request.body())
            moved = self._backend.retry(names)
        except BadBody as exc:
            return _json(HTTPStatus.BAD_REQUEST, exc.to_dict())
        except ValueError as exc:
            return _json(HTTPStatus.BAD_REQUEST, {"error": "refused", "detail": str(exc)})
        log.info("http_retry", count=len(moved))
        return _json(HTTPStatus.OK, {"retried": moved})

    def _page_response(self, request: Request) -> Response:
        headers = (
            ("Content-Security-Policy", self._policy),
            ("Referrer-Policy", "no-referrer"),
            ("X-Frame-Options", "DENY"),
        )
        return Response(HTTPStatus.OK, self._page, "text/html; charset=utf-8", headers)
