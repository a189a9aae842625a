"""A real HTTP server on 127.0.0.1 playing an indexer (Prowlarr, Jackett, a tracker's RSS links).

Each path answers a scripted list of :class:`Answer` values, one per request (the
last one repeats): a torrent, a redirect, an error code, an HTML page, a huge
body, a slow or trickling answer. Every request is recorded with its query, so a
test can check the API key reached the indexer (and nowhere else).
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Answer:
    """One answer: ``code``, ``body``, extra headers; ``delay`` before it, ``trickle`` s per byte."""

    code: int = 200
    body: bytes = field(default=b"", repr=False)
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    trickle: float = 0.0
    length: bool = True  # send Content-Length (else the body ends when the connection closes)


class Indexer:
    """``with Indexer() as ix:`` then ``ix.route(path, Answer(...))``; links are ``ix.link(path)``."""

    def __init__(self, apikey: str = "SECRET") -> None:
        self.apikey = apikey
        self.routes: dict[str, list[Answer]] = {}
        self.requests: list[str] = []  # path and query of each request, in order
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def route(self, path: str, *answers: Answer) -> str:
        """Answer ``path`` with ``answers`` in turn (the last one repeats); returns its link with the key."""
        with self._lock:
            self.routes[path] = list(answers)
        return self.link(path)

    def link(self, path: str) -> str:
        return f"{self.base}{path}?apikey={self.apikey}&t=get"

    def hits(self, path: str) -> int:
        with self._lock:
            return sum(1 for r in self.requests if urlsplit(r).path == path)

    def _next(self, raw: str) -> Answer:
        with self._lock:
            self.requests.append(raw)
            parts = urlsplit(raw)
            answers = self.routes.get(parts.path)
            if answers is None:
                return Answer(404, b"no such route")
            if f"apikey={self.apikey}" not in parts.query.split("&"):
                return Answer(401, b"bad api key")
            return answers.pop(0) if len(answers) > 1 else answers[0]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        indexer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                answer = indexer._next(self.path)
                if answer.delay and indexer._closing.wait(answer.delay):
                    return
                self.send_response(answer.code)
                for name, value in answer.headers:
                    self.send_header(name, value)
                if answer.length:
                    self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the client gave up (a limit, a timeout)
                    self._body(answer)

            def _body(self, answer: Answer) -> None:
                if not answer.trickle:
                    self.wfile.write(answer.body)
                    return
                for index in range(len(answer.body)):
                    if indexer._closing.wait(answer.trickle):
                        return
                    self.wfile.write(answer.body[index : index + 1])
                    self.wfile.flush()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Indexer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def redirect(location: str, code: int = 302) -> Answer:
    return Answer(code, b"", (("Location", location),))


def torrent_answer(body: bytes) -> Answer:
    return Answer(200, body, (("Content-Type", "application/x-bittorrent"),))


def html_page() -> Answer:
    page = b"<!doctype html><html><body><h1>Login</h1><form>...</form></body></html>"
    return Answer(200, page, (("Content-Type", "text/html; charset=utf-8"),))


def chain(indexer: Indexer, prefix: str, hops: int, last: Answer) -> str:
    """``hops`` redirects ``prefix0`` → ``prefix1`` → … then ``last``; returns the first link."""
    for hop in range(hops):
        indexer.route(f"{prefix}{hop}", redirect(indexer.link(f"{prefix}{hop + 1}")))
    indexer.route(f"{prefix}{hops}", last)
    return indexer.link(f"{prefix}0")
