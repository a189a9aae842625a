"""The free-space read (``sync/maindata``, seconds on a big instance) never holds up a send."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import responses

from magnetd.delivery.qbittorrent import AddAnswer, Client, InstanceError
from magnetd.model import AddOptions, InstanceStatus
from tests.fakes import FakeClock
from tests.unit.test_qbittorrent import ADD, API, LOGIN, URL, VERSION

MAINDATA = API + "sync/maindata"
MAGNET = "magnet:?xt=urn:btih:" + "a" * 40
FREE = 123_456_789
SLOW = 5.0  # seconds the slow maindata holds its answer at most
Answer = tuple[int, dict[str, str], str]


@pytest.fixture
def client(clock: FakeClock) -> Iterator[Client]:
    qbt = Client(URL, "admin", "pw", clock=clock)
    yield qbt
    qbt.close()


def maindata(free: int = FREE) -> str:
    return json.dumps({"rid": 1, "full_update": True, "server_state": {"free_space_on_disk": free}})


def logins(rsps: responses.RequestsMock) -> int:
    return sum(1 for call in rsps.calls if call.request.url == LOGIN)


def login_setting(rsps: responses.RequestsMock, *sids: str) -> None:
    """Each login answers Ok. with the next session cookie of ``sids``."""
    for sid in sids:
        rsps.add(responses.POST, LOGIN, body="Ok.", headers={"Set-Cookie": f"SID={sid}; HttpOnly; path=/"})


def test_an_add_is_not_delayed_by_a_slow_free_space_read(
    rsps: responses.RequestsMock, client: Client
) -> None:
    started, release = threading.Event(), threading.Event()
    cookies: list[str] = []

    def slow(request: Any) -> Answer:
        cookies.append(request.headers.get("Cookie", ""))
        started.set()
        release.wait(SLOW)
        return 200, {}, maindata()

    login_setting(rsps, "one")
    rsps.add_callback(responses.GET, MAINDATA, callback=slow)
    rsps.add(responses.POST, ADD, body="Ok.")
    rsps.add(responses.GET, VERSION, body="2.8.19")
    read: list[int] = []
    reader = threading.Thread(target=lambda: read.append(client.free_space()))
    reader.start()
    try:
        assert started.wait(SLOW), "sync/maindata was never asked"
        begun = time.monotonic()
        assert client.add_magnets([MAGNET], AddOptions()) == AddAnswer(accepted=True)
        assert client.version() == "2.8.19"
        took = time.monotonic() - begun
    finally:
        release.set()
        reader.join(SLOW)
    assert took < 1.0, f"the add waited {took:.1f} s behind sync/maindata"
    assert read == [FREE]
    assert cookies == ["SID=one"]  # the read went out with the session's cookie
    assert logins(rsps) == 1  # one session for both


def test_free_space_logs_in_again_once_when_its_session_expired(
    rsps: responses.RequestsMock, client: Client
) -> None:
    login_setting(rsps, "old", "new")
    rsps.add(responses.GET, VERSION, body="2.8.19")
    client.version()
    cookies: list[str] = []

    def expired_then_ok(request: Any) -> Answer:
        cookies.append(request.headers.get("Cookie", ""))
        return (403, {}, "Forbidden") if len(cookies) == 1 else (200, {}, maindata())

    rsps.add_callback(responses.GET, MAINDATA, callback=expired_then_ok)
    assert client.free_space() == FREE
    assert cookies == ["SID=old", "SID=new"]
    assert logins(rsps) == 2
    assert client.version() == "2.8.19"
    assert logins(rsps) == 2  # the main session goes on with the new cookie


def test_free_space_403_twice_is_http_403_and_the_next_call_logs_in(
    rsps: responses.RequestsMock, client: Client
) -> None:
    login_setting(rsps, "a", "b", "c")
    rsps.add(responses.GET, MAINDATA, status=403, body="Forbidden")
    with pytest.raises(InstanceError) as caught:
        client.free_space()
    assert caught.value.status == InstanceStatus.http(403)
    assert logins(rsps) == 2
    rsps.add(responses.GET, VERSION, body="2.8.19")
    client.version()
    assert logins(rsps) == 3


def test_free_space_answers_minus_one_when_qbittorrent_does_not_say(
    rsps: responses.RequestsMock, client: Client
) -> None:
    login_setting(rsps, "a")
    rsps.add(responses.GET, MAINDATA, body=json.dumps({"rid": 1, "server_state": {}}))
    assert client.free_space() == -1
    rsps.replace(responses.GET, MAINDATA, body="not json")
    with pytest.raises(InstanceError) as caught:
        client.free_space()
    assert caught.value.status == InstanceStatus.UNKNOWN


def test_free_space_respects_the_login_backoff(rsps: responses.RequestsMock, client: Client) -> None:
    rsps.add(responses.POST, LOGIN, body="Fails.")
    with pytest.raises(InstanceError) as caught:
        client.free_space()
    assert caught.value.status == InstanceStatus.AUTH_FAILED
    with pytest.raises(InstanceError):
        client.free_space()  # backing off: no second login
    assert logins(rsps) == 1
    assert not any(str(call.request.url).startswith(MAINDATA) for call in rsps.calls)


def test_free_space_with_an_api_key(rsps: responses.RequestsMock, clock: FakeClock) -> None:
    seen: list[str] = []

    def keyed(request: Any) -> Answer:
        seen.append(request.headers.get("Authorization", ""))
        return (200, {}, maindata()) if len(seen) == 1 else (403, {}, "Forbidden")

    rsps.add_callback(responses.GET, MAINDATA, callback=keyed)
    with Client(URL, "", "", clock=clock, api_key="k3y-value") as keyed_client:
        assert keyed_client.free_space() == FREE
        with pytest.raises(InstanceError) as caught:
            keyed_client.free_space()
        assert caught.value.status == InstanceStatus.AUTH_FAILED
        assert "k3y-value" not in caught.value.detail
        with pytest.raises(InstanceError):
            keyed_client.free_space()  # the refused key is not sent again at once
    assert seen == ["Bearer k3y-value", "Bearer k3y-value"]
    assert logins(rsps) == 0
