"""Unit tests of magnetd.delivery.qbittorrent against canned WebAPI answers (``responses``)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
import responses
from responses import matchers

from magnetd.delivery.connection import BACKOFF_FIRST, BACKOFF_MAX, api_base
from magnetd.delivery.qbittorrent import AddAnswer, Client, InstanceError, ItemRejected, upload_name
from magnetd.model import AddOptions
from tests.fakes import FakeClock

URL = "http://qbt.test:8080/"
API = URL + "api/v2/"
LOGIN = API + "auth/login"
VERSION = API + "app/webapiVersion"
ADD = API + "torrents/add"
INFO = API + "torrents/info"
PASSWORD = "s3cret-Pa55word"
H1 = "a" * 40
H2 = "b" * 40
H3 = "c" * 40
MAGNETS = [f"magnet:?xt=urn:btih:{h}&dn=x" for h in (H1, H2, H3)]


@pytest.fixture
def client(clock: FakeClock) -> Iterator[Client]:
    qbt = Client(URL, "admin", PASSWORD, clock=clock)
    yield qbt
    qbt.close()


def count(rsps: responses.RequestsMock, url: str) -> int:
    """How many requests went to ``url``."""
    return sum(1 for call in rsps.calls if call.request.url == url)


def form_of(call: Any) -> dict[str, list[str]]:
    """The urlencoded form a recorded request sent."""
    body = call.request.body
    text = body.decode() if isinstance(body, bytes) else body
    return parse_qs(text, keep_blank_values=True)


def last_to(rsps: responses.RequestsMock, url: str) -> Any:
    """The last recorded call to ``url``."""
    return [call for call in rsps.calls if call.request.url == url][-1]


def refuse_login(rsps: responses.RequestsMock, client: Client) -> None:
    """qBittorrent refuses the password once: the client starts backing off."""
    rsps.add(responses.POST, LOGIN, body="Fails.")
    with pytest.raises(InstanceError):
        client.login()


# --- login ---------------------------------------------------------------


def test_login_ok_then_version(rsps: responses.RequestsMock, client: Client) -> None:
    rsps.add(responses.POST, LOGIN, body="Ok.")
    rsps.add(responses.GET, VERSION, body="2.8.19")
    assert client.version() == "2.8.19"
    assert client.version() == "2.8.19"
    assert count(rsps, LOGIN) == 1
    assert form_of(last_to(rsps, LOGIN)) == {"username": ["admin"], "password": [PASSWORD]}


def test_login_204_is_success(rsps: responses.RequestsMock, client: Client) -> None:
    rsps.add(responses.POST, LOGIN, status=204)
    rsps.add(responses.GET, VERSION, body="2.11.4")
    assert client.version() == "2.11.4"
    assert client.login_blocked_until is None


@pytest.mark.parametrize(("status", "body"), [(200, "Fails."), (401, "")])
def test_login_refused_is_auth_failed(
    rsps: responses.RequestsMock, client: Client, clock: FakeClock, status: int, body: str
) -> None:
    rsps.add(responses.POST, LOGIN, status=status, body=body)
    with pytest.raises(InstanceError) as caught:
        client.login()
    assert caught.value.status == "AUTH_FAILED"
    assert client.login_blocked_until == clock.now + BACKOFF_FIRST
    assert caught.value.retry_in == BACKOFF_FIRST
    assert "next login attempt in 600 s" in caught.value.detail
    assert "next login" not in caught.value.reason and caught.value.reason in caught.value.detail


def test_login_403_is_banned_and_backs_off(rsps: responses.RequestsMock, client: Client) -> None:
    text = "Your IP address has been banned after too many failed authentication attempts."
    rsps.add(responses.POST, LOGIN, status=403, body=text)
    with pytest.raises(InstanceError) as caught:
        client.login()
    assert caught.value.status == "BANNED"
    assert "banned" in caught.value.detail
    with pytest.raises(InstanceError) as again:
        client.version()
    assert again.value.status == "BANNED"
    assert len(rsps.calls) == 1


def test_login_other_status_is_http(rsps: responses.RequestsMock, client: Client) -> None:
    rsps.add(responses.POST, LOGIN, status=404, body="Not Found")
    with pytest.raises(InstanceError) as caught:
        client.login()
    assert caught.value.status == "HTTP_404"
    assert client.login_blocked_until is None


def test_session_cookie_is_kept_whatever_its_name(rsps: responses.RequestsMock, client: Client) -> None:
    rsps.add(responses.POST, LOGIN, body="Ok.", headers={"Set-Cookie": "QBT_SID_8080=tok3n; path=/"})
    rsps.add(responses.GET, VERSION, body="2.8.19")
    client.version()
    assert last_to(rsps, VERSION).request.headers["Cookie"] == "QBT_SID_8080=tok3n"


# --- back-off ------------------------------------------------------------


def test_backoff_sends_nothing_until_it_passes(
    rsps: responses.RequestsMock, client: Client, clock: FakeClock
) -> None:
    refuse_login(rsps, client)
    assert len(rsps.calls) == 1
    for call in (client.login, client.version, lambda: client.add_magnets(MAGNETS, AddOptions())):
        with pytest.raises(InstanceError) as caught:
            call()
        assert caught.value.status == "AUTH_FAILED"
        assert "600 s" in caught.value.detail
    clock.now += BACKOFF_FIRST - 1
    with pytest.raises(InstanceError) as caught:
        client.present([H1])
    assert caught.value.status == "AUTH_FAILED"
    assert "1 s" in caught.value.detail
    assert caught.value.retry_in == 1
    assert len(rsps.calls) == 1

    clock.now += 1
    assert client.login_blocked_until is None
    with pytest.raises(InstanceError):
        client.login()
    assert count(rsps, LOGIN) == 2
    assert client.login_blocked_until == clock.now + 2 * BACKOFF_FIRST


def test_backoff_doubles_up_to_a_day_and_resets_on_success(
    rsps: responses.RequestsMock, client: Client, clock: FakeClock
) -> None:
    rsps.add(responses.POST, LOGIN, body="Fails.")
    waits = []
    for _ in range(10):
        with pytest.raises(InstanceError):
            client.login()
        until = client.login_blocked_until
        assert until is not None
        waits.append(until - clock.now)
        clock.now = until
    assert waits[:4] == [600, 1200, 2400, 4800]
    assert waits[-1] == BACKOFF_MAX
    assert count(rsps, LOGIN) == 10

    rsps.replace(responses.POST, LOGIN, body="Ok.")
    client.login()
    assert client.login_blocked_until is None
    rsps.replace(responses.POST, LOGIN, body="Fails.")
    with pytest.raises(InstanceError):
        client.login()
    assert client.login_blocked_until == clock.now + BACKOFF_FIRST


def test_new_client_starts_without_backoff(
    rsps: responses.RequestsMock, client: Client, clock: FakeClock
) -> None:
    refuse_login(rsps, client)
    fresh = Client(URL, "admin", "new-password", clock=clock)
    assert fresh.login_blocked_until is None
    rsps.replace(responses.POST, LOGIN, body="Ok.")
    fresh.login()
    assert count(rsps, LOGIN) == 2


# --- expired sessions ----------------------------------------------------


def test_403_relogs_in_once_then_succeeds(rsps: responses.RequestsMock, client: Client) -> None:
    rsps.add(responses.POST, LOGIN, body="Ok.")
    rsps.add(responses.POST, ADD, status=403, body="Forbidden")
    rsps.add(responses.POST, ADD, body="Ok.")
    assert client.add_magnets(MAGNETS[:1], AddOptions()) == AddAnswer(accepted=True)
    assert count(rsps, LOGIN) == 2
    assert count(rsps, ADD) == 2


def test_403_twice_is_http_403(rsps: responses.RequestsMock, client: Client) -> None:
    rsps.add(responses.POST, LOGIN, body="Ok.")
    rsps.add(responses.POST, ADD, status=403, body="Forbidden")
    with pytest.raises(InstanceError) as caught:
        client.add_magnets(MAGNETS[:1], AddOptions())
    assert caught.value.status == "HTTP_403"
    assert count(rsps, LOGIN) == 2
    assert count(rsps, ADD) == 2


def test_expired_session_on_probe(rsps: responses.RequestsMock, client: Client) -> None:
    rsps.add(responses.POST, LOGIN, body="Ok.")
    rsps.add(responses.GET, VERSION, body="2.8.19")
    client.version()
    rsps.replace(responses.GET, VERSION, status=403, body="Forbidden")
    rsps.add(responses.GET, VERSION, body="2.8.19")
    assert client.version() == "2.8.19"
    assert count(rsps, LOGIN) == 2


# --- torrents/add answers ------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "answer"),
    [
        (200, "Ok.", AddAnswer(True)),
        (200, "Fails.", AddAnswer(False)),
        (
            200,
            json.dumps(
                {
                    "success_count": 1,
                    "failure_count": 1,
                    "pending_count": 0,
                    "added_torrent_ids": [H1.upper()],
                }
            ),
            AddAnswer(True, (H1,)),
        ),
        (
            202,
            json.dumps(
                {
                    "success_count": 0,
                    "failure_count": 0,
                    "pending_count": 1,
                    "added_torrent_ids": [],
                }
            ),
            AddAnswer(True),
        ),
        (409, "", AddAnswer(False)),
        (409, "Conflict", AddAnswer(False)),
    ],
)
def test_add_answers(
    rsps: responses.RequestsMock, client: Client, status: int, body: str, answer: AddAnswer
) -> None:
    rsps.add(responses.POST, LOGIN, body="Ok.")
    rsps.add(responses.POST, ADD, status=status, body=body)
    assert client.add_magnets(MAGNETS, AddOptions()) == answer


def test_add_unreadable_answer_is_unknown(rsps: responses.RequestsMock, client: Client) -> None:
    rsps.add(responses.POST, LOGIN, body="Ok.")
    rsps.add(responses.POST, ADD, body="<html>proxy page</html>")
    with pytest.raises(InstanceError) as caught:
        client.add_magnets(MAGNETS, AddOptions())
    assert caught.value.status == "UNKNOWN"


def test_add_torrent_415_is_item_rejected(rsps: responses.RequestsMock, client: Client) -> None:
    rsps.add(responses.POST, LOGIN, body="Ok.")
    text = "Error: 'bad.torrent' is not a valid torrent file."
    rsps.add(responses.POST, ADD, status=415, body=text)
    with pytest.raises(ItemRejected) as caught:
        client.add_torrent("bad.torrent", b"garbage", AddOptions())
    assert caught.value.reason == "INVALID_TORRENT"
    assert "not a valid torrent" in caught.value.detail


def test_add_form_fields(rsps: responses.RequestsMock, client: Client) -> None:
    rsps.add(responses.POST, LOGIN, body="Ok.")
    rsps.add(responses.POST, ADD, body="Ok.")
    options = AddOptions(category="books", savepath="/srv/dl", tags=("a", "b c"), paused=True)
    client.add_magnets(MAGNETS, options)
    form = form_of(last_to(rsps, ADD))
    assert form == {
        "urls": ["\n".join(MAGNETS)],
        "category": ["books"],
        "savepath": ["/srv/dl"],
        "autoTMM": ["false"],
        "tags": ["a,b c"],
        "paused": ["true"],
        "stopped": ["true"],
    }


def test_add_form_paused_false_and_unset_options(rsps: responses.RequestsMock, client: Client) -> None:
    rsps.add(responses.POST, LOGIN, body="Ok.")
    rsps.add(responses.POST, ADD, body="Ok.")
    client.add_magnets(MAGNETS[:1], AddOptions(paused=False))
    form = form_of(last_to(rsps, ADD))
    assert form == {"urls": [MAGNETS[0]], "paused": ["false"], "stopped": ["false"]}
    client.add_magnets(MAGNETS[:1], AddOptions())
    assert form_of(last_to(rsps, ADD)) == {"urls": [MAGNETS[0]]}


def test_savepath_turns_automatic_torrent_management_off(
    rsps: responses.RequestsMock, client: Client
) -> None:
    """An instance with auto-TMM on by default ignores ``savepath`` unless ``autoTMM=false`` comes with it."""
    rsps.add(responses.POST, LOGIN, body="Ok.")
    rsps.add(responses.POST, ADD, body="Ok.")
    client.add_magnets(MAGNETS[:1], AddOptions(savepath="/srv/books"))
    assert form_of(last_to(rsps, ADD)) == {
        "urls": [MAGNETS[0]],
        "savepath": ["/srv/books"],
        "autoTMM": ["false"],
    }
    client.add_magnets(MAGNETS[:1], AddOptions(category="books"))
    assert "autoTMM" not in form_of(last_to(rsps, ADD)), "no savepath: the category's own rules apply"
    client.add_torrent("a.torrent", b"d4:infodee", AddOptions(savepath="/srv/books"))
    body = last_to(rsps, ADD).request.body
    assert b'name="savepath"\r\n\r\n/srv/books\r\n' in body
    assert b'name="autoTMM"\r\n\r\nfalse\r\n' in body


def test_add_nothing_sends_nothing(rsps: responses.RequestsMock, client: Client) -> None:
    assert client.add_magnets([], AddOptions()) == AddAnswer(False)
    assert len(rsps.calls) == 0


def test_add_torrent_is_multipart(rsps: responses.RequestsMock, client: Client) -> None:
    rsps.add(responses.POST, LOGIN, body="Ok.")
    rsps.add(responses.POST, ADD, body="Ok.")
    data = b"d4:infod4:name1:xee"
    options = AddOptions(category="books", tags=("t1", "t2"), paused=True)
    assert client.add_torrent("dir/Ünï code.torrent", data, options).accepted
    request = last_to(rsps, ADD).request
    assert request.headers["Content-Type"].startswith("multipart/form-data")
    body = request.body
    assert b'name="torrents"; filename="n_code.torrent"' in body
    assert data in body
    for name, value in [("paused", "true"), ("stopped", "true"), ("tags", "t1,t2")]:
        assert f'name="{name}"\r\n\r\n{value}\r\n'.encode() in body
    assert body.count(b'name="torrents"') == 1


def test_upload_name() -> None:
    assert upload_name("x.torrent") == "x.torrent"
    assert upload_name("/a/b/My File [1].torrent") == "My_File_1_.torrent"
    assert upload_name("") == "upload.torrent"
    assert upload_name("noext") == "noext.torrent"


# --- transport errors ----------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (requests.exceptions.ConnectTimeout("connect timed out"), "TIMEOUT"),
        (requests.exceptions.ReadTimeout("read timed out"), "TIMEOUT"),
        (requests.exceptions.ConnectionError("Connection refused"), "UNREACHABLE"),
        (requests.exceptions.SSLError("certificate verify failed"), "TLS_ERROR"),
        (requests.exceptions.ChunkedEncodingError("broken"), "UNKNOWN"),
    ],
)
def test_transport_errors(
    rsps: responses.RequestsMock, client: Client, error: Exception, status: str
) -> None:
    rsps.add(responses.POST, LOGIN, body=error)
    with pytest.raises(InstanceError) as caught:
        client.version()
    assert caught.value.status == status


def test_http_500(rsps: responses.RequestsMock, client: Client) -> None:
    rsps.add(responses.POST, LOGIN, body="Ok.")
    rsps.add(responses.POST, INFO, status=500, body="Internal Server Error")
    with pytest.raises(InstanceError) as caught:
        client.present([H1])
    assert caught.value.status == "HTTP_500"
    assert "500" in caught.value.detail


def test_redirect_is_not_followed(rsps: responses.RequestsMock, client: Client) -> None:
    rsps.add(responses.POST, LOGIN, status=302, headers={"Location": "https://elsewhere/"})
    with pytest.raises(InstanceError) as caught:
        client.login()
    assert caught.value.status == "HTTP_302"
    assert len(rsps.calls) == 1


def test_connection_refused_for_real() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    qbt = Client(f"http://127.0.0.1:{port}", "admin", PASSWORD, timeout=2)
    with pytest.raises(InstanceError) as caught:
        qbt.version()
    assert caught.value.status == "UNREACHABLE"


def test_read_timeout_for_real() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        qbt = Client(f"http://127.0.0.1:{port}/", "admin", PASSWORD, timeout=0.3)
        started = time.monotonic()
        with pytest.raises(InstanceError) as caught:
            qbt.login()
        assert caught.value.status == "TIMEOUT"
        assert time.monotonic() - started < 5


# --- headers and secrets -------------------------------------------------


def test_no_origin_or_referer_header(rsps: responses.RequestsMock, client: Client) -> None:
    rsps.add(responses.POST, LOGIN, body="Ok.")
    rsps.add(responses.GET, VERSION, body="2.8.19")
    rsps.add(responses.POST, ADD, body="Ok.")
    rsps.add(responses.POST, INFO, json=[])
    client.version()
    client.add_magnets(MAGNETS, AddOptions(paused=True))
    client.add_torrent("a.torrent", b"d4:infodee", AddOptions())
    client.present([H1])
    assert len(rsps.calls) == 5
    for call in rsps.calls:
        names = {name.lower() for name in call.request.headers}
        assert not names & {"origin", "referer"}


def test_password_never_in_texts(rsps: responses.RequestsMock, clock: FakeClock) -> None:
    qbt = Client(f"http://admin:{PASSWORD}@qbt.test:8080/", "admin", PASSWORD, clock=clock)
    assert PASSWORD not in repr(qbt)
    assert "qbt.test:8080" in repr(qbt) and "admin" in repr(qbt)
    rsps.add(responses.POST, LOGIN, status=500, body=f"echo password={PASSWORD}")
    texts = []
    with pytest.raises(InstanceError) as caught:
        qbt.login()
    texts.append(caught.value)
    rsps.replace(responses.POST, LOGIN, body="Fails.")
    for _ in range(2):
        with pytest.raises(InstanceError) as caught:
            qbt.version()
        texts.append(caught.value)
    rsps.replace(responses.POST, LOGIN, body=requests.exceptions.ConnectionError(PASSWORD))
    clock.now += BACKOFF_FIRST
    with pytest.raises(InstanceError) as caught:
        qbt.login()
    texts.append(caught.value)
    for error in texts:
        assert PASSWORD not in str(error)
        assert PASSWORD not in repr(error)
        assert PASSWORD not in error.detail
        assert PASSWORD not in error.reason
        assert PASSWORD not in (error.raw or "")
    assert texts[-1].raw is not None and "***" in texts[-1].raw


# --- torrents/info -------------------------------------------------------


def test_present_matches_hash_v1_and_truncated_v2(rsps: responses.RequestsMock, client: Client) -> None:
    v2_only = "d" * 64
    hybrid_v2 = "e" * 64
    rsps.add(responses.POST, LOGIN, body="Ok.")
    rsps.add(
        responses.POST,
        INFO,
        json=[
            {"hash": H1, "infohash_v1": H1, "infohash_v2": ""},
            {"hash": H2, "infohash_v1": H2, "infohash_v2": hybrid_v2},
            {"hash": v2_only[:40], "infohash_v1": "", "infohash_v2": v2_only},
            {"hash": "f" * 40},
        ],
    )
    asked = {H1.upper(), hybrid_v2[:40], v2_only[:40], H3}
    assert client.present(asked) == {H1, hybrid_v2[:40], v2_only[:40]}
    hashes = form_of(last_to(rsps, INFO))["hashes"][0].split("|")
    assert sorted(hashes) == sorted(i.lower() for i in asked)


def test_present_nothing_sends_nothing(rsps: responses.RequestsMock, client: Client) -> None:
    assert client.present([]) == set()
    assert client.torrents([]) == []
    assert len(rsps.calls) == 0


def test_torrents_raw_and_bad_json(rsps: responses.RequestsMock, client: Client) -> None:
    rsps.add(responses.POST, LOGIN, body="Ok.")
    rsps.add(responses.POST, INFO, json=[{"hash": H1, "category": "books"}])
    assert client.torrents([H1]) == [{"hash": H1, "category": "books"}]
    rsps.replace(responses.POST, INFO, body="not json")
    with pytest.raises(InstanceError) as caught:
        client.torrents([H1])
    assert caught.value.status == "UNKNOWN"


# --- URLs and threads ----------------------------------------------------


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("http://h:8080", "http://h:8080/api/v2/"),
        ("http://h:8080/", "http://h:8080/api/v2/"),
        ("https://host/qbt", "https://host/qbt/api/v2/"),
        ("https://host/qbt/", "https://host/qbt/api/v2/"),
    ],
)
def test_api_base(url: str, base: str) -> None:
    assert api_base(url) == base


def test_path_prefix_url(rsps: responses.RequestsMock) -> None:
    rsps.add(responses.POST, "https://host/qbt/api/v2/auth/login", body="Ok.")
    rsps.add(responses.GET, "https://host/qbt/api/v2/app/webapiVersion", body="2.8.19")
    rsps.add(
        responses.POST,
        "https://host/qbt/api/v2/torrents/info",
        json=[],
        match=[matchers.urlencoded_params_matcher({"hashes": H1})],
    )
    qbt = Client("https://host/qbt/", "admin", PASSWORD)
    assert qbt.version() == "2.8.19"
    assert qbt.present([H1]) == set()
    assert [call.request.url for call in rsps.calls] == [
        "https://host/qbt/api/v2/auth/login",
        "https://host/qbt/api/v2/app/webapiVersion",
        "https://host/qbt/api/v2/torrents/info",
    ]


def test_calls_are_serialized(rsps: responses.RequestsMock, client: Client) -> None:
    active = 0
    overlaps = 0
    guard = threading.Lock()

    def slow(request: Any) -> tuple[int, dict[str, str], str]:
        nonlocal active, overlaps
        with guard:
            active += 1
            overlaps += active > 1
        time.sleep(0.02)
        with guard:
            active -= 1
        return 200, {}, "2.8.19"

    rsps.add(responses.POST, LOGIN, body="Ok.")
    rsps.add_callback(responses.GET, VERSION, callback=slow)
    threads = [threading.Thread(target=client.version) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == 0
    assert count(rsps, LOGIN) == 1
    assert count(rsps, VERSION) == 6


@pytest.mark.parametrize(
    ("url", "encoding"),
    [
        ("http://127.0.0.1:8080/", "identity"),
        ("http://127.3.4.5:8080/", "identity"),
        ("http://[::1]:8080/", "identity"),
        ("http://localhost:8080/", "identity"),
        ("http://LocalHost:8080/qbt/", "identity"),
        ("http://[::ffff:127.0.0.1]:8080/", "identity"),
        ("http://192.168.1.20:8080/", "gzip"),
        ("https://seedbox.example.net/", "gzip"),
    ],
)
def test_answers_are_asked_uncompressed_only_from_this_machine(url: str, encoding: str) -> None:
    with responses.RequestsMock() as rsps, Client(url, "admin", PASSWORD) as qbt:
        rsps.add(responses.POST, qbt._base + "auth/login", body="Ok.")
        rsps.add(responses.POST, qbt._base + "torrents/info", json=[{"hash": H1}])
        assert qbt.present([H1]) == {H1}
        asked = {call.request.headers["Accept-Encoding"] for call in rsps.calls}
        if encoding == "identity":
            assert asked == {"identity"}
        else:  # requests' default: gzip and deflate, and more where brotli or zstandard is installed
            assert all("gzip" in header for header in asked)


def _env_of_one_request(url: str) -> dict[str, Any]:
    """The proxies, verify and Authorization header the one ``app/version`` request of a fresh
    Client to ``url`` went out with (its environment read when the Client was made)."""
    with responses.RequestsMock() as rsps, Client(url, "", "", api_key="k" * 32) as qbt:
        rsps.add(responses.GET, qbt._base + "app/version", body="v5.2.0")
        qbt.app_version()
        sent = rsps.calls[0].request
        kwargs: dict[str, Any] = sent.req_kwargs  # type: ignore[attr-defined]  # set by responses
        auth = sent.headers.get("Authorization")
        return {"proxies": kwargs["proxies"], "verify": kwargs["verify"], "auth": auth}


def test_proxies_from_the_environment_are_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    monkeypatch.setenv("NO_PROXY", "local.test")
    assert _env_of_one_request("https://seedbox.test/")["proxies"]["https"] == "http://proxy.test:3128"
    assert "https" not in _env_of_one_request("https://qbt.local.test/")["proxies"]


def test_the_environment_is_read_once_per_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not before every request: what a running daemon's environment says does not change."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    with responses.RequestsMock() as rsps, Client("https://seedbox.test/", "", "", api_key="k" * 32) as qbt:
        rsps.add(responses.GET, qbt._base + "app/version", body="v5.2.0")
        monkeypatch.setenv("HTTPS_PROXY", "http://other.test:3128")
        qbt.app_version()
        assert rsps.calls[0].request.req_kwargs["proxies"]["https"] == "http://proxy.test:3128"  # type: ignore[attr-defined]


def test_a_ca_bundle_from_the_environment_is_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    assert _env_of_one_request("https://seedbox.test/")["verify"] == str(bundle)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.setenv("CURL_CA_BUNDLE", str(bundle))
    assert _env_of_one_request("https://seedbox.test/")["verify"] == str(bundle)


def test_a_netrc_login_for_the_host_is_sent(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """As requests sends one when it reads the environment itself (before an API key's header)."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine seedbox.test login user password pass\n", encoding="utf-8")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert _env_of_one_request("https://seedbox.test/")["auth"] == "Basic dXNlcjpwYXNz"
    assert _env_of_one_request("https://other.test/")["auth"] == "Bearer " + "k" * 32


def test_present_gives_back_the_callers_own_id_strings(rsps: responses.RequestsMock, client: Client) -> None:
    rsps.add(responses.POST, LOGIN, body="Ok.")
    rsps.add(responses.POST, INFO, json=[{"hash": H1}, {"hash": H2}])
    mine = "".join(["a"] * 40)  # equal to H1, another object
    upper = H2.upper()
    found = client.present([mine, upper, H3])
    assert found == {H1, H2}
    assert any(item is mine for item in found)  # kept, not a copy: held until the batch lands


def test_present_asks_per_call_ids_at_a_time(rsps: responses.RequestsMock, client: Client) -> None:
    rsps.add(responses.POST, LOGIN, body="Ok.")
    rsps.add(responses.POST, INFO, json=[{"hash": H1}])
    ids = [H1, H2, H3, "d" * 40, "e" * 40]
    assert client.present(ids, per_call=2) == {H1}
    assert [len(form_of(call)["hashes"][0].split("|")) for call in rsps.calls[1:]] == [2, 2, 1]
    assert client.present(ids) == {H1}  # the default slice holds all five
    assert len(form_of(rsps.calls[-1])["hashes"][0].split("|")) == 5
