"""The real status endpoint (waitress on 127.0.0.1, a free port) around a :class:`FakeBackend`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from magnetd.telemetry.metrics import Metrics
from magnetd.telemetry.server import WebServer
from magnetd.telemetry.web import WebApp
from tests.fakes import FakeBackend

TOKEN = "s3cret-token-for-tests"


@contextmanager
def serving(
    backend: FakeBackend,
    token: str | None = TOKEN,
    listen: str = "127.0.0.1:0",
    limits: Mapping[str, Any] | None = None,
    metrics: Metrics | None = None,
) -> Iterator[WebServer]:
    """A started :class:`WebServer`; stopped on exit. ``server.port`` is the port it got."""
    metrics = metrics or Metrics(backend.snapshot, probe_targets=["primary", "backup"])
    server = WebServer(WebApp(backend, metrics, token), listen, limits)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def base_url(server: WebServer) -> str:
    return f"http://127.0.0.1:{server.port}"
