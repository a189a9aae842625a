"""Short details for transport failures, from real sockets (no traffic leaves 127.0.0.1).

Each test makes the failure happen for real where a local socket can (refused,
reset, closed, a full accept queue, TLS against plain HTTP, a self-signed
certificate). Where it cannot without sending packets elsewhere (DNS, no
route), the socket layer under urllib3 is replaced by one that raises the
operating system's error, so urllib3 and requests still wrap it as they do.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import ssl
import struct
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3.util.connection

from magnetd.delivery.qbittorrent import Client, InstanceError
from magnetd.delivery.transport import Endpoint, chain
from magnetd.model import InstanceStatus
from tests.realparts import need_program

RAW_MARK = "Max retries exceeded"  # what urllib3's own text says, and the detail must not


def failure(url: str, timeout: float = 2.0) -> InstanceError:
    """The InstanceError a real Client raises when probing ``url``."""
    with Client(url, "admin", "pw", timeout=timeout) as client, pytest.raises(InstanceError) as caught:
        client.version()
    return caught.value


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server


def serve_once(server: socket.socket, answer: Callable[[socket.socket], None]) -> threading.Thread:
    """Accept one connection on a thread, read the whole request, then ``answer`` it."""

    def run() -> None:
        conn, _ = server.accept()
        with conn:
            conn.settimeout(0.2)
            with contextlib.suppress(TimeoutError):
                while conn.recv(65536):  # headers and body may come in two parts
                    pass
            answer(conn)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def url_of(server: socket.socket, scheme: str = "http") -> str:
    return f"{scheme}://127.0.0.1:{server.getsockname()[1]}/"


def test_refused() -> None:
    port = free_port()
    error = failure(f"http://127.0.0.1:{port}/")
    assert error.status == InstanceStatus.UNREACHABLE
    assert error.detail == f"connection refused by 127.0.0.1:{port}"
    assert error.raw is not None and RAW_MARK in error.raw and str(port) in error.raw


def test_reset(listener: socket.socket) -> None:
    def reset(conn: socket.socket) -> None:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    thread = serve_once(listener, reset)
    error = failure(url_of(listener))
    thread.join()
    assert error.status == InstanceStatus.UNREACHABLE
    assert error.detail == f"connection reset by 127.0.0.1:{listener.getsockname()[1]}"


def test_closed_without_answer(listener: socket.socket) -> None:
    thread = serve_once(listener, lambda conn: None)
    error = failure(url_of(listener))
    thread.join()
    assert error.status == InstanceStatus.UNREACHABLE
    assert error.detail.endswith("closed the connection without answering")


def test_name_not_resolved(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_such_name(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    error = failure("http://qbt.lan:8080/")
    assert (error.status, error.detail) == (InstanceStatus.UNREACHABLE, "cannot resolve name qbt.lan")


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (errno.EHOSTUNREACH, "no route to host 10.8.0.2:8080"),
        (errno.ENETUNREACH, "network unreachable for 10.8.0.2:8080"),
        (errno.EACCES, "connection to 10.8.0.2:8080 not permitted (a firewall or sandbox rule)"),
        (errno.EPROTO, "cannot connect to 10.8.0.2:8080 (EPROTO)"),
    ],
)
def test_os_errors_by_errno(monkeypatch: pytest.MonkeyPatch, code: int, words: str) -> None:
    def fails(*args: Any, **kwargs: Any) -> Any:  # no packet leaves: the error is raised here
        raise OSError(code, "from the kernel")

    monkeypatch.setattr(urllib3.util.connection, "create_connection", fails)
    error = failure("http://10.8.0.2:8080/")
    assert (error.status, error.detail) == (InstanceStatus.UNREACHABLE, words)
    assert error.raw is not None and "from the kernel" in error.raw


def test_connect_timeout_on_a_full_accept_queue() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        waiting = [socket.socket() for _ in range(3)]  # never accepted: the queue fills, SYNs are dropped
        for sock in waiting:
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
        try:
            error = failure(f"http://127.0.0.1:{port}/", timeout=0.3)
        finally:
            for sock in waiting:
                sock.close()
    assert error.status == InstanceStatus.TIMEOUT
    assert error.detail.startswith(f"no connection to 127.0.0.1:{port} within 0.3 s")


def test_read_timeout(listener: socket.socket) -> None:
    error = failure(url_of(listener), timeout=0.3)  # accepted by the kernel, never answered
    assert error.status == InstanceStatus.TIMEOUT
    assert (
        error.detail
        == f"127.0.0.1:{listener.getsockname()[1]} took the connection but did not answer within 0.3 s"
    )


def test_tls_to_a_plain_http_port(listener: socket.socket) -> None:
    thread = serve_once(listener, lambda conn: conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n"))
    error = failure(url_of(listener, "https"))
    thread.join()
    assert error.status == InstanceStatus.TLS_ERROR
    assert error.detail == f"127.0.0.1:{listener.getsockname()[1]} does not speak TLS (is it plain http://?)"


def test_tls_self_signed_certificate(tmp_path: Path, listener: socket.socket) -> None:
    openssl = need_program("openssl")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    request = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"]
    subprocess.run(
        [openssl, *request, "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def handshake() -> None:
        conn, _ = listener.accept()
        with conn, pytest.raises(ssl.SSLError):
            context.wrap_socket(conn, server_side=True)  # the client gives up: an alert, or EOF

    thread = threading.Thread(target=handshake, daemon=True)
    thread.start()
    error = failure(url_of(listener, "https"))
    thread.join(5)
    assert error.status == InstanceStatus.TLS_ERROR
    assert error.detail.startswith(
        f"the certificate of 127.0.0.1:{listener.getsockname()[1]} is not accepted: "
    )
    assert "self-signed" in error.detail and "verify_tls" in error.detail


def _self_signed(tmp_path: Path) -> tuple[Path, ssl.SSLContext]:
    """A certificate for 127.0.0.1 signed by itself, and a server context that presents it."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    request = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
    request += ["-addext", "subjectAltName=IP:127.0.0.1"]
    subprocess.run(
        [need_program("openssl"), *request, "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return cert, context


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")  # "off": as asked
@pytest.mark.parametrize("how", ["bundle", "environment", "off"])
def test_tls_a_self_signed_certificate_is_taken_as_configured(
    tmp_path: Path, listener: socket.socket, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """``verify_tls``: its CA bundle, or the one ``REQUESTS_CA_BUNDLE`` names, or none at all."""
    cert, context = _self_signed(tmp_path)
    choices: dict[str, bool | str] = {"bundle": str(cert), "environment": True, "off": False}
    verify = choices[how]
    if how == "environment":
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))

    def answer() -> None:
        conn, _ = listener.accept()
        with context.wrap_socket(conn, server_side=True) as tls:
            tls.recv(65536)
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n2.9.3")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    with Client(url_of(listener, "https"), "", "", api_key="k" * 32, verify=verify) as client:
        assert client.version() == "2.9.3"
    thread.join(5)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://127.0.0.1:8080/", "127.0.0.1:8080"),
        ("http://qbt.lan/", "qbt.lan:80"),
        ("https://qbt.lan/qbt/", "qbt.lan:443"),
        ("http://[::1]:8080/", "[::1]:8080"),
        ("http://user:pw@host:99999/", "host:80"),
    ],
)
def test_endpoint(url: str, shown: str) -> None:
    assert str(Endpoint.of(url)) == shown


def test_chain_follows_cycles_once() -> None:
    first, second = ValueError("a"), KeyError("b")
    first.__context__, second.__context__ = second, first
    assert list(chain(first)) == [first, second]


def _request(conn: socket.socket, pending: bytes) -> bytes:
    """Read one request (headers and Content-Length body) from ``conn``; what came after it."""
    while b"\r\n\r\n" not in pending:
        pending += conn.recv(65536)
    head, _, rest = pending.partition(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    length = next((int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length")), 0)
    while len(rest) < length:
        rest += conn.recv(65536)
    return rest[length:]


def test_answers_are_read_whole_and_the_connection_is_kept(listener: socket.socket) -> None:
    bodies = [bytes([65 + i]) * (300_000 + i) for i in range(3)]  # ~30 reads of 10 KB each, before

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            pending = b""
            for body in bodies:
                pending = _request(conn, pending)
                head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                conn.sendall(head + body)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with Client(url_of(listener), "admin", "pw", timeout=5) as client:
        client._logged_in = True
        answers = [client._call("POST", "torrents/info", data="hashes=a").content for _ in bodies]
    thread.join(5)
    assert answers == bodies
    listener.setblocking(False)
    with pytest.raises(BlockingIOError):  # all three on the one connection
        listener.accept()


def test_an_answer_cut_short_is_an_instance_error(listener: socket.socket) -> None:
    def cut(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 10)

    thread = serve_once(listener, cut)
    error = failure(url_of(listener))
    thread.join()
    assert error.status == InstanceStatus.UNKNOWN  # as when requests read the body itself
    assert "IncompleteRead(10 bytes read, 99990 more expected)" in error.detail
