"""A real local HTTP server standing in for gluetun's control server (``:8000``).

It answers ``GET /v1/vpn/status`` with ``{"status": "running"|"stopped"}`` and
``GET /v1/publicip/ip`` with ``{"public_ip": ..., "country": ...}``, and, like
gluetun ≥ 3.40, refuses a request without the right ``X-API-Key`` (401). A
test flips its state, or stops it (connections refused) and starts it again on
the same port. It counts the requests it answered.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ControlServer:
    """A gluetun-like control server on 127.0.0.1."""

    def __init__(self, api_key: str | None = None, public_ip: str = "198.51.100.20") -> None:
        self.api_key = api_key
        self.vpn = "running"
        self.public_ip = public_ip
        self.requests = 0
        self.refused = 0
        self._server: ThreadingHTTPServer | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ControlServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests += 1
                if owner.api_key is not None and self.headers.get("X-API-Key") != owner.api_key:
                    owner.refused += 1
                    self._answer(401, {"error": "unauthorized"})
                elif self.path == "/v1/vpn/status":
                    self._answer(200, {"status": owner.vpn})
                elif self.path == "/v1/publicip/ip":
                    self._answer(200, {"public_ip": owner.public_ip, "country": "Nowhere"})
                else:
                    self._answer(404, {"error": "not found"})

            def _answer(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def start_again(self) -> None:
        self.start()

    def stop(self) -> None:
        """Gone, as a killed container: connections are refused until :meth:`start`."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> ControlServer:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
