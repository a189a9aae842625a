"""The status endpoint's server: waitress on a thread of its own, and the ``listen`` address.

waitress buffers slow clients itself and enforces the limits in
:data:`SERVER_LIMITS` (connections, idle time, head and body size), so a slow
or hostile client costs a socket, not a thread. It has no shutdown call of its
own: :meth:`WebServer.stop` closes every socket from inside its loop and stops
the worker threads, so an idle keep-alive client cannot hold the daemon up.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, cast
from wsgiref.types import StartResponse, WSGIEnvironment

from waitress import wasyncore
from waitress.server import TcpWSGIServer, create_server

from magnetd import logs
from magnetd.address import parse_listen
from magnetd.telemetry.bodies import MAX_BODY

log = logs.get("magnetd.telemetry.server")


SERVER_LIMITS: dict[str, Any] = {
    "threads": 3,  # handlers only read memory; more would only cost RAM
    "connection_limit": 40,  # open sockets (the listener counts too); past it, new ones wait
    "channel_timeout": 10,  # seconds a connection may sit idle or half-sent before it is dropped
    "cleanup_interval": 2,  # how often idle connections are looked for
    "max_request_header_size": 64 * 1024,
    "max_request_body_size": MAX_BODY + 1,  # waitress refuses bodies >= this with 413
    "asyncore_use_poll": True,
    "ident": "magnetd",
    "expose_tracebacks": False,
}


def _first_address(host: str, port: int) -> str:
    """The first address ``host`` resolves to, so that waitress binds one socket."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    return str(found[0][4][0])


class _ToEvents(logging.Handler):
    """Turns waitress's own log records (connection limit reached, queue depth) into events."""

    def emit(self, record: logging.LogRecord) -> None:
        level = "warning" if record.levelno >= logging.WARNING else "info"
        getattr(log, level)("http_server_message", logger=record.name, text=record.getMessage()[:500])


def _bridge_waitress_logs() -> None:
    logger = logging.getLogger("waitress")
    if not any(isinstance(h, _ToEvents) for h in logger.handlers):
        logger.addHandler(_ToEvents(logging.INFO))
        logger.setLevel(logging.INFO)
        logger.propagate = False


class _Waitress(Protocol):
    """What :class:`WebServer` uses of waitress's ``TcpWSGIServer`` (its stubs miss or mistype these)."""

    effective_port: int | str
    trigger: Any  # a wasyncore dispatcher: pull_trigger(thunk) runs thunk on the loop's thread
    _map: dict[int, Any]
    task_dispatcher: Any

    def run(self) -> None: ...


class WebServer:
    """Serves a WSGI app under waitress on a thread of its own; :meth:`stop` ends it promptly."""

    def __init__(
        self,
        app: Callable[[WSGIEnvironment, StartResponse], Iterable[bytes]],
        listen: str,
        limits: Mapping[str, Any] | None = None,
    ) -> None:
        """``listen`` is ``HOST:PORT`` (port 0: any free one); ``limits`` override :data:`SERVER_LIMITS`."""
        self._app = app
        self._host, self._port = parse_listen(listen)
        self._limits = {**SERVER_LIMITS, **(limits or {})}
        self._server: _Waitress | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port it listens on (the one chosen by the system for ``:0``), once started."""
        if self._server is None:
            return self._port
        return int(self._server.effective_port)

    @property
    def host(self) -> str:
        return self._host

    def start(self) -> None:
        """Bind (OSError if the address is taken or unknown) and serve on a daemon thread.

        A host name listens on its first address only (``localhost``: ``::1`` or ``127.0.0.1``).
        """
        _bridge_waitress_logs()
        address = _first_address(self._host, self._port)
        created = create_server(self._app, host=address, port=self._port, **self._limits)
        assert isinstance(created, TcpWSGIServer)  # one address: one server, not a MultiSocketServer
        server = cast(_Waitress, created)
        self._server = server
        self._thread = threading.Thread(target=self._run, args=(server,), name="magnetd-http", daemon=True)
        self._thread.start()
        log.info("http_listening", host=self._host, port=self.port)

    def _run(self, server: _Waitress) -> None:
        try:
            server.run()
        except Exception as exc:
            log.error("http_server_died", error=repr(exc))

    def stop(self, timeout: float = 5.0) -> None:
        """Close every socket, end the loop and the worker threads; idle keep-alive clients don't delay it."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._server = None
        # close from inside the loop's own thread: nothing else touches its socket map
        with contextlib.suppress(OSError):  # the loop already ended and closed the trigger
            server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        thread.join(timeout)
        if thread.is_alive():  # the loop did not answer: close from here
            wasyncore.close_all(server._map, ignore_all=True)
            thread.join(timeout)
        server.task_dispatcher.shutdown(timeout=timeout)
        log.info("http_stopped", port=server.effective_port, stuck=thread.is_alive())
