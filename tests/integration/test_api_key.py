"""API keys against a real qbittorrent-nox: a real 5.2+ key works, a wrong key is AUTH_FAILED, no ban.

Run against 5.3 with ``MAGNETD_QBT=5.3`` (CI does). Against 4.5, which has no API
keys, the same client is refused: a key is never taken for a login there either.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from magnetd.delivery.qbittorrent import Client, InstanceError
from magnetd.model import AddOptions
from tests.daemon import wait_for
from tests.qbt import Qbt, need_qbt

pytestmark = pytest.mark.real

WEBAPI_WITH_KEYS = (2, 15)  # qBittorrent 5.2


@pytest.fixture
def qbt(tmp_path: Path) -> Iterator[Qbt]:
    need_qbt()
    with Qbt(tmp_path / "qbt") as instance:
        yield instance


def rotate_key(qbt: Qbt) -> str:
    """A new API key, made as a user would: log in, ``POST app/rotateAPIKey``."""
    api = qbt.api()
    assert api.login()
    key = api.request("POST", "app/rotateAPIKey").json()["apiKey"]
    assert isinstance(key, str) and key
    return key


def test_a_real_key_works_and_a_wrong_one_is_auth_failed_without_a_ban(qbt: Qbt) -> None:
    api = qbt.api()
    assert api.login()
    wrong = "qbt_" + secrets.token_urlsafe(24)
    if api.webapi() < WEBAPI_WITH_KEYS:  # 4.5: no keys; a Bearer header is no session
        with Client(qbt.url, "", "", api_key=wrong) as client, pytest.raises(InstanceError) as refused:
            client.version()
        assert refused.value.status == "AUTH_FAILED"
        return
    key = rotate_key(qbt)
    with Client(qbt.url, "", "", api_key=key) as client:
        assert client.version() == api.version()
        assert client.app_version().startswith("v5.")
        torrent_id = secrets.token_hex(20)
        uri = f"magnet:?xt=urn:btih:{torrent_id}&dn=k"
        assert client.add_magnets([uri], AddOptions(paused=True)).accepted
        wait_for(lambda: client.present([torrent_id]) == {torrent_id}, 10, "the keyed add listed")
    for _ in range(7):  # more than qBittorrent's 5 failed logins before a ban
        with Client(qbt.url, "", "", api_key=wrong) as client, pytest.raises(InstanceError) as refused:
            client.version()
        assert refused.value.status == "AUTH_FAILED" and wrong not in str(refused.value)
    assert qbt.api().login(), "a wrong key bans no one: the password still logs in"
    with Client(qbt.url, qbt.username, qbt.password) as client:
        assert client.version()
