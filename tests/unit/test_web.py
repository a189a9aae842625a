"""The status endpoint over a real waitress server on 127.0.0.1 with a fake backend."""

from __future__ import annotations

import io
import json
import socket
import time
from collections.abc import Iterator

import fastbencode
import pytest
import requests

from magnetd import logs
from magnetd.address import is_loopback, parse_listen
from magnetd.model import FileKind
from magnetd.telemetry.bodies import MAX_BODY
from magnetd.telemetry.metrics import Metrics
from magnetd.telemetry.server import WebServer
from magnetd.telemetry.web import WebApp, healthz_limit
from tests.fakes import FakeBackend
from tests.webparts import TOKEN, base_url, serving

MAGNET = "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&dn=test"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def url(backend: FakeBackend) -> Iterator[str]:
    with serving(backend) as server:
        yield base_url(server)


@pytest.fixture
def open_url(backend: FakeBackend) -> Iterator[str]:
    """A server without a token."""
    with serving(backend, token=None) as server:
        yield base_url(server)


# -- health ----------------------------------------------------------------------------------------


def test_healthz_follows_the_heartbeat_and_needs_no_token(url: str, backend: FakeBackend) -> None:
    answer = requests.get(f"{url}/healthz", timeout=5)
    assert (answer.status_code, answer.text) == (200, "ok\n")
    backend.age = 31.0
    answer = requests.get(f"{url}/healthz", timeout=5)
    assert answer.status_code == 503 and "31s" in answer.text
    backend.age = 29.0
    assert requests.head(f"{url}/healthz", timeout=5).status_code == 200


def test_healthz_limit_is_three_probe_intervals_but_at_least_30_seconds() -> None:
    assert healthz_limit(1) == 30
    assert healthz_limit(20) == 60


def test_readyz_reports_why_files_would_be_held(url: str, backend: FakeBackend) -> None:
    answer = requests.get(f"{url}/readyz", timeout=5)
    assert (answer.status_code, answer.json()) == (200, {"ready": True})
    backend.is_ready = (False, "no instance is OK")
    answer = requests.get(f"{url}/readyz", timeout=5)
    assert (answer.status_code, answer.json()) == (503, {"ready": False, "reason": "no instance is OK"})


# -- status, auth ----------------------------------------------------------------------------------


def test_status_is_the_backend_status_plus_the_server_time(url: str, backend: FakeBackend) -> None:
    answer = requests.get(f"{url}/api/status", headers=AUTH, timeout=5)
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
    body = answer.json()
    assert body.pop("served_at").endswith("Z")
    assert body == backend.status()
    assert body["recent"][1] == {**body["recent"][1], "file": "bad link.magnet", "reason": "not_magnet"}


@pytest.mark.parametrize("path", ["/metrics", "/api/status", "/"])
def test_a_token_guards_everything_but_health(url: str, path: str) -> None:
    bare = requests.get(url + path, timeout=5)
    assert bare.status_code == 401 and bare.headers["WWW-Authenticate"] == "Bearer"
    wrong = requests.get(url + path, headers={"Authorization": "Bearer nope"}, timeout=5)
    assert wrong.status_code == 401
    basic = requests.get(url + path, headers={"Authorization": f"Basic {TOKEN}"}, timeout=5)
    assert basic.status_code == 401
    assert requests.get(url + path, headers=AUTH, timeout=5).status_code == 200
    for public in ("/healthz", "/readyz"):
        assert requests.get(url + public, timeout=5).status_code == 200


def test_only_the_dashboard_page_takes_the_token_in_its_address(url: str) -> None:
    page = requests.get(f"{url}/?token={TOKEN}", timeout=5)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert "<script>" in page.text and "http" not in page.text.split("<script>")[0].replace("http-equiv", "")
    refused = requests.get(f"{url}/?token=wrong", timeout=5)
    assert refused.status_code == 401 and "/?token=TOKEN" in refused.text
    assert requests.get(f"{url}/api/status?token={TOKEN}", timeout=5).status_code == 401
    assert requests.get(f"{url}/metrics?token={TOKEN}", timeout=5).status_code == 401


def test_without_a_token_everything_but_add_is_open(open_url: str, backend: FakeBackend) -> None:
    assert requests.get(f"{open_url}/api/status", timeout=5).status_code == 200
    assert requests.get(f"{open_url}/metrics", timeout=5).status_code == 200
    assert requests.get(f"{open_url}/", timeout=5).status_code == 200
    refused = requests.post(f"{open_url}/api/add", data=MAGNET, headers=AUTH, timeout=5)
    assert (refused.status_code, refused.json()["error"]) == (403, "add_needs_token")
    assert backend.added == []


def test_an_empty_token_is_refused_rather_than_taken_for_none(backend: FakeBackend) -> None:
    for empty in ("", " \n"):
        with pytest.raises(ValueError, match="empty"):
            WebApp(backend, Metrics(backend.snapshot), empty)


# -- add, retry ------------------------------------------------------------------------------------


def test_add_takes_magnet_lines_and_queue_json(url: str, backend: FakeBackend) -> None:
    answer = requests.post(f"{url}/api/add", data=MAGNET + "\n", headers=AUTH, timeout=5)
    assert (answer.status_code, answer.json()) == (202, {"file": "web-1.magnet"})
    queue = {"magnets": [MAGNET], "category": "books"}
    answer = requests.post(f"{url}/api/add", json=queue, headers=AUTH, timeout=5)
    assert (answer.status_code, answer.json()) == (202, {"file": "web-2.json"})
    assert backend.added == [
        ((MAGNET + "\n").encode(), FileKind.MAGNET),
        (json.dumps(queue).encode(), FileKind.JSON),
    ]


def test_add_takes_a_torrent_file_by_its_content_type(url: str, backend: FakeBackend) -> None:
    info = {b"name": b"x", b"piece length": 16384, b"pieces": b"p" * 20, b"length": 1}
    data = fastbencode.bencode({b"info": info})
    headers = {**AUTH, "Content-Type": "application/x-bittorrent"}
    answer = requests.post(f"{url}/api/add", data=data, headers=headers, timeout=5)
    assert (answer.status_code, answer.json()) == (202, {"file": "web-1.torrent"})
    answer = requests.post(f"{url}/api/add", data=b"d4:spam", headers=headers, timeout=5)
    assert (answer.status_code, answer.json()["error"]) == (400, "bad_torrent")
    assert backend.added == [(data, FileKind.TORRENT)]


def test_add_needs_the_token_and_refuses_bad_bodies_whole(url: str, backend: FakeBackend) -> None:
    assert requests.post(f"{url}/api/add", data=MAGNET, timeout=5).status_code == 401
    answer = requests.post(f"{url}/api/add", data="ftp://example.com/x", headers=AUTH, timeout=5)
    assert answer.status_code == 400 and answer.json()["error"] == "not_magnet"
    answer = requests.post(f"{url}/api/add", data=f"{MAGNET}\nnot a link\n", headers=AUTH, timeout=5)
    body = answer.json()
    assert answer.status_code == 400 and body["error"] == "invalid_entries"
    assert [line["line"] for line in body["lines"]] == [2]
    assert requests.post(f"{url}/api/add", data="  \n", headers=AUTH, timeout=5).status_code == 400
    answer = requests.post(f"{url}/api/add", data=f"{MAGNET}\n# refuse-me\n", headers=AUTH, timeout=5)
    assert answer.json() == {"error": "refused", "detail": "the inbox is full"}
    assert backend.added == []


def test_bodies_over_one_mebibyte_get_413_and_one_mebibyte_passes(url: str, backend: FakeBackend) -> None:
    padding = ("#" + "x" * 1000 + "\n") * (MAX_BODY // 1002)
    exact = (MAGNET + "\n" + padding).encode()
    exact += b"#" * (MAX_BODY - len(exact) - 1) + b"\n"
    assert len(exact) == MAX_BODY
    assert requests.post(f"{url}/api/add", data=exact, headers=AUTH, timeout=10).status_code == 202
    answer = requests.post(f"{url}/api/add", data=exact + b"\n", headers=AUTH, timeout=10)
    assert answer.status_code == 413
    assert len(backend.added) == 1


def test_an_oversized_body_is_refused_before_it_is_sent(url: str) -> None:
    """Only the head is sent, announcing 5 MiB: the answer comes without waiting for the body."""
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        head = f"POST /api/add HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        head += f"Content-Length: {5 << 20}\r\n\r\n"
        sock.sendall(head.encode())
        assert sock.recv(200).startswith(b"HTTP/1.1 413")


def test_retry_moves_named_or_all_failed_files_and_refuses_escapes(url: str, backend: FakeBackend) -> None:
    answer = requests.post(f"{url}/api/retry", json={"files": ["bad link.magnet"]}, headers=AUTH, timeout=5)
    assert (answer.status_code, answer.json()) == (200, {"retried": ["bad link.magnet"]})
    for name in ("../etc/passwd", "/etc/passwd", "a/../../b", "C:x", "", 7):
        answer = requests.post(f"{url}/api/retry", json={"files": [name]}, headers=AUTH, timeout=5)
        assert answer.status_code == 400, name
    assert requests.post(f"{url}/api/retry", data="{", headers=AUTH, timeout=5).status_code == 400
    assert requests.post(f"{url}/api/retry", timeout=5).status_code == 401
    answer = requests.post(f"{url}/api/retry", headers=AUTH, timeout=5)
    assert answer.json() == {"retried": ["books/old.json"]}
    assert backend.retried == [["bad link.magnet"], []]


# -- protocol edges --------------------------------------------------------------------------------


def test_unknown_paths_are_404_and_wrong_methods_405(url: str) -> None:
    assert requests.get(f"{url}/nope", headers=AUTH, timeout=5).status_code == 404
    assert requests.get(f"{url}/api/status/", headers=AUTH, timeout=5).status_code == 404
    answer = requests.get(f"{url}/api/add", headers=AUTH, timeout=5)
    assert answer.status_code == 405 and answer.headers["Allow"] == "POST"
    answer = requests.post(f"{url}/healthz", timeout=5)
    assert answer.status_code == 405 and answer.headers["Allow"] == "GET, HEAD"
    assert requests.delete(f"{url}/api/status", headers=AUTH, timeout=5).status_code == 405


def test_a_backend_error_is_a_500_and_the_server_goes_on(url: str, backend: FakeBackend) -> None:
    backend.broken = True
    answer = requests.get(f"{url}/api/status", headers=AUTH, timeout=5)
    assert (answer.status_code, answer.json()) == (500, {"error": "internal_error"})
    backend.broken = False
    assert requests.get(f"{url}/api/status", headers=AUTH, timeout=5).status_code == 200


def test_a_garbage_request_line_gets_a_4xx_and_the_server_stays_up(url: str) -> None:
    port = int(url.rsplit(":", 1)[1])
    for garbage in (
        b"\x00\xff\xfe garbage\r\n\r\n",
        b"GET / HTTP/9.9 extra words\r\n\r\n",
        b"G\x7fT\r\n\r\n",
    ):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(garbage)
            status = sock.recv(64)
        assert status[:10] in (b"HTTP/1.0 4", b"HTTP/1.1 4"), (garbage, status)
    assert requests.get(f"{url}/healthz", timeout=5).status_code == 200


def test_twenty_half_open_clients_do_not_slow_healthz_and_are_dropped(backend: FakeBackend) -> None:
    limits = {"channel_timeout": 1, "cleanup_interval": 0.5}
    with serving(backend, limits=limits) as server:
        url = base_url(server)
        slow = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(20)]
        for sock in slow:
            sock.sendall(b"GET /heal")  # half a request line, then nothing
        started = time.monotonic()
        for _ in range(5):
            assert requests.get(f"{url}/healthz", timeout=2).status_code == 200
        assert time.monotonic() - started < 1.0
        for sock in slow:  # each is closed by the server once idle for channel_timeout
            sock.settimeout(5)
            assert sock.recv(100) == b""
            sock.close()


def test_default_limits_leave_room_for_twenty_slow_clients_and_a_health_check(backend: FakeBackend) -> None:
    with serving(backend) as server:
        slow = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(20)]
        for sock in slow:
            sock.sendall(b"GET /api/sta")
        try:
            started = time.monotonic()
            assert requests.get(f"{base_url(server)}/healthz", timeout=2).status_code == 200
            assert time.monotonic() - started < 0.5
        finally:
            for sock in slow:
                sock.close()


def test_stop_is_prompt_with_an_idle_keep_alive_client(backend: FakeBackend) -> None:
    session = requests.Session()
    with serving(backend) as server:
        port = server.port
        assert session.get(f"{base_url(server)}/healthz", timeout=5).status_code == 200
        started = time.monotonic()
    assert time.monotonic() - started < 1.0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    session.close()


def test_a_taken_port_is_an_error_at_start(backend: FakeBackend) -> None:
    with serving(backend) as server:
        second = WebServer(lambda environ, start: [], f"127.0.0.1:{server.port}")
        with pytest.raises(OSError):
            second.start()


def test_requests_are_logged_without_query_strings_or_tokens(url: str) -> None:
    stream = io.StringIO()
    logs.setup("json", level="debug", stream=stream)
    try:
        requests.get(f"{url}/?token={TOKEN}&x=1", timeout=5)
        requests.get(f"{url}/api/status", headers=AUTH, timeout=5)
    finally:
        logs.setup("json", level="info", stream=io.StringIO())
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    requested = [(e["path"], e["status"]) for e in events if e["event"] == "http_request"]
    assert requested == [("/", 200), ("/api/status", 200)]
    assert TOKEN not in stream.getvalue() and "x=1" not in stream.getvalue()


# -- listen addresses ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9187", ("127.0.0.1", 9187)),
        ("[::1]:9187", ("::1", 9187)),
        ("localhost:0", ("localhost", 0)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
    ],
)
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["9187", ":9187", "::1:9187", "[nope]:1", "host:65536", "host:x", "host:-1"])
def test_parse_listen_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_listen(text)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("nas.lan", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(("listen", "host"), [("[::1]:0", "[::1]"), ("localhost:0", "localhost")])
def test_ipv6_and_host_names_serve(backend: FakeBackend, listen: str, host: str) -> None:
    with serving(backend, listen=listen) as server:
        answer = requests.get(f"http://{host}:{server.port}/healthz", timeout=5)
        assert answer.status_code == 200


def test_stop_twice_is_harmless(backend: FakeBackend) -> None:
    server = WebServer(WebApp(backend, Metrics(backend.snapshot), None), "127.0.0.1:0")
    server.start()
    port = server.port
    server.stop()
    server.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
