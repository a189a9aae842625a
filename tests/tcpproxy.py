"""A loopback TCP relay that counts the bytes a client sends through it.

Put in front of a qbittorrent-nox, it proves "no traffic at all" claims: the
count must not move while the instance is supposed to be left alone. ``on_send``
sees each chunk a client sends before it is relayed: a test can look at the
world at the very moment a request reaches the instance.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable


class CountingProxy:
    """Listens on 127.0.0.1:<port> and relays to 127.0.0.1:<target>."""

    def __init__(self, target_port: int, on_send: Callable[[bytes], None] | None = None) -> None:
        self.target_port = target_port
        self.on_send = on_send
        self.sent = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(64)
        self.port: int = self._server.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, count: bool) -> None:
        try:
            while data := source.recv(65536):
                if count:
                    with self._lock:
                        self.sent += len(data)
                    if self.on_send is not None:
                        self.on_send(data)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def traffic(self) -> tuple[int, int]:
        """(connections accepted, bytes sent by clients) so far."""
        with self._lock:
            return self.connections, self.sent

    def close(self) -> None:
        self._closed = True
        self._server.close()
