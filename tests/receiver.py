"""A real HTTP receiver on 127.0.0.1 for notification tests: records requests, answers as told.

It answers a scripted sequence of status codes (then ``default``), and can hold
each request for a while before answering, like a slow or hung receiver. The
hold ends early when the receiver is closed, so tests never wait for it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """``with Receiver() as r:`` then POST to ``r.url``; read ``r.requests``."""

    def __init__(
        self, codes: Iterable[int] = (), default: int = 200, hold: float = 0.0, location: str = ""
    ) -> None:
        self.codes = list(codes)
        self.default = default
        self.hold = hold
        self.location = location  # sent as Location: with every answer, when set
        self.requests: list[Request] = []
        self.arrived = threading.Condition()
        self._released = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                code = receiver._record(Request("POST", self.path, dict(self.headers.items()), body))
                receiver._released.wait(receiver.hold)
                self.send_response(code)
                if receiver.location:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def _record(self, request: Request) -> int:
        with self.arrived:
            self.requests.append(request)
            self.arrived.notify_all()
            return self.codes.pop(0) if self.codes else self.default

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Request]:
        """The requests once ``count`` have arrived; AssertionError after ``timeout``."""
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.requests) >= count, timeout):
                raise AssertionError(f"{len(self.requests)} requests arrived, expected {count}")
            return list(self.requests)

    def block(self, hold: float = 60.0) -> None:
        """Hold every request from now on for ``hold`` seconds, or until :meth:`release`."""
        self.hold = hold
        self._released.clear()

    def release(self) -> None:
        """Answer held requests now, and the next ones at once."""
        self._released.set()

    def close(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
