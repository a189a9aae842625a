"""magnetd.delivery.qbittorrent.Client against a real qbittorrent-nox (see tests/qbt.py)."""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from magnetd.delivery.qbittorrent import Client, InstanceError, ItemRejected
from magnetd.model import AddOptions
from tests.daemon import wait_for
from tests.integration.conftest import torrent_file
from tests.qbt import Qbt, need_qbt

pytestmark = pytest.mark.real

PAUSED_STATES = {"pausedDL", "pausedUP", "stoppedDL", "stoppedUP"}
LOGIN_FAILURE = "WebAPI login failure"


@pytest.fixture
def qbt(tmp_path: Path) -> Iterator[Qbt]:
    """A fresh qbittorrent-nox with its profile in ``tmp_path``, always stopped after."""
    need_qbt()
    instance = Qbt(tmp_path / "qbt")
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def client(qbt: Qbt) -> Iterator[Client]:
    """A magnetd client for ``qbt`` with the right password."""
    with Client(qbt.url, qbt.username, qbt.password) as real:
        yield real


def random_ids(count: int) -> list[str]:
    """``count`` random v1 infohashes as lower-case hex."""
    return [secrets.token_hex(20) for _ in range(count)]


def magnet(torrent_id: str) -> str:
    return f"magnet:?xt=urn:btih:{torrent_id}&dn=x"


def test_version(client: Client) -> None:
    assert re.fullmatch(r"2\.\d+\.\d+", client.version())


def test_batch_of_magnets_paused_with_category_and_tags(qbt: Qbt, client: Client) -> None:
    ids = random_ids(3)
    options = AddOptions(category="books", tags=("magnetd", "second"), paused=True)
    answer = client.add_magnets([magnet(i) for i in ids], options)
    assert answer.accepted
    wait_for(lambda: client.present(ids) == set(ids), 10)

    listed = client.torrents(ids)
    assert sorted(t["hash"] for t in listed) == sorted(ids)
    for torrent in listed:
        assert torrent["category"] == "books"
        assert torrent["state"] in PAUSED_STATES
        assert set(torrent["tags"].split(", ")) == {"magnetd", "second"}

    again = client.add_magnets([magnet(i) for i in ids], options)
    assert not again.accepted
    assert client.present(ids) == set(ids)

    api = qbt.api()
    assert api.login()
    assert sorted(t["hash"] for t in api.torrents(category="books")) == sorted(ids)


def test_present_ignores_unknown_ids(client: Client) -> None:
    known, unknown = random_ids(2)
    assert client.add_magnets([magnet(known)], AddOptions(paused=True)).accepted
    wait_for(lambda: client.present([known, unknown]) == {known}, 10)
    assert client.present([unknown]) == set()


def test_wrong_password_tries_once(qbt: Qbt) -> None:
    wrong = Client(qbt.url, qbt.username, "not-the-password")
    with pytest.raises(InstanceError) as first:
        wrong.login()
    assert first.value.status == "AUTH_FAILED"
    assert wrong.login_blocked_until is not None
    for call in (wrong.login, wrong.version):
        with pytest.raises(InstanceError) as again:
            call()
        assert again.value.status == "AUTH_FAILED"
    wrong.close()

    api = qbt.api()
    wait_for(lambda: LOGIN_FAILURE in api.log_text(), 10)
    time.sleep(0.5)
    assert api.log_text().count(LOGIN_FAILURE) == 1
    assert api.login()
    messages = [entry["message"] for entry in api.log_main()]
    assert sum(LOGIN_FAILURE in m for m in messages) == 1


def test_savepath_wins_over_automatic_torrent_management(qbt: Qbt, client: Client, tmp_path: Path) -> None:
    """With auto-TMM on by default, 4.5.2 ignores a bare ``savepath``; ours is kept on every version.

    (5.3.0 itself turns auto-TMM off for an add that names a ``savepath``.)
    """
    api = qbt.api()
    assert api.login()
    api.request("POST", "app/setPreferences", data={"json": json.dumps({"auto_tmm_enabled": True})})
    assert api.request("GET", "app/preferences").json()["auto_tmm_enabled"] is True
    savepath = tmp_path / "downloads" / "books"
    bare, ours = random_ids(2)
    api.add_magnet(magnet(bare), savepath=str(savepath), paused="true")  # as magnetd sent it before
    assert client.add_magnets([magnet(ours)], AddOptions(savepath=str(savepath), paused=True)).accepted
    wait_for(lambda: client.present([bare, ours]) == {bare, ours}, 10, "both listed")
    listed = {t["hash"]: t for t in api.torrents(hashes=f"{bare}|{ours}")}
    if api.webapi() < (2, 9):  # 4.5.x: the case magnetd's autoTMM=false is for
        assert listed[bare]["auto_tmm"] is True, "the instance manages torrents automatically by default"
    assert listed[ours]["auto_tmm"] is False
    assert Path(listed[ours]["save_path"]) == savepath


def test_add_real_torrent_file(client: Client) -> None:
    data, infohash = torrent_file("x")
    answer = client.add_torrent("x.torrent", data, AddOptions(category="books", paused=True))
    assert answer.accepted
    wait_for(lambda: client.present([infohash]) == {infohash}, 10)
    wait_for(lambda: client.torrents([infohash])[0]["state"] in PAUSED_STATES, 10)
    assert client.torrents([infohash])[0]["category"] == "books"


def test_add_garbage_torrent_is_rejected(client: Client) -> None:
    with pytest.raises(ItemRejected) as caught:
        client.add_torrent("garbage.torrent", b"this is not bencode", AddOptions())
    assert caught.value.reason == "INVALID_TORRENT"
    assert client.version()


def test_session_lost_on_restart_relogs_in(qbt: Qbt, client: Client) -> None:
    client.version()
    qbt.stop()
    qbt.start()
    ids = random_ids(1)
    assert client.add_magnets([magnet(ids[0])], AddOptions(paused=True)).accepted
    wait_for(lambda: client.present(ids) == set(ids), 10)


def test_unreachable_when_stopped(qbt: Qbt, client: Client) -> None:
    client.version()
    qbt.stop()
    with pytest.raises(InstanceError) as caught:
        client.version()
    assert caught.value.status == "UNREACHABLE"
