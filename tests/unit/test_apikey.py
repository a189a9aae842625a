"""API-key auth (qBittorrent 5.2+): config sources, the Bearer header, a refused key, the versions shown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import responses
import yaml

from magnetd import config
from magnetd.delivery.connection import KEY_BACKOFF_FIRST
from magnetd.delivery.qbittorrent import Client, InstanceError
from magnetd.records import status
from tests.fakes import FakeClock

URL = "http://qbt.test:8080/"
API = URL + "api/v2/"
KEY = "qbt_0123456789abcdefghijklmnopqrstu"
FOLDERS = {"inbox": "./in", "sent": "./sent", "failed": "./failed"}


def write(tmp_path: Path, **auth: str) -> Path:
    path = tmp_path / "magnetd.yaml"
    data = {"folders": FOLDERS, "instances": [{"name": "a", "url": URL, **auth}]}
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    path.chmod(0o600)
    return path


def problems(path: Path, environ: dict[str, str]) -> list[tuple[str, str]]:
    with pytest.raises(config.ConfigError) as caught:
        config.load(path, environ)
    return [(p.key, p.message) for p in caught.value.problems]


def test_key_from_the_environment_needs_no_username(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, api_key_env="QBT_KEY"), {"QBT_KEY": KEY})
    [inst] = cfg.instances
    assert inst.api_key == KEY and inst.password == "" and inst.username == ""
    assert inst.password_source == "api_key_env" and inst.password_from == "api_key_env QBT_KEY"
    assert KEY in set(cfg.secrets()) and KEY not in repr(inst)


def test_key_from_a_file_is_watched_like_a_password_file(tmp_path: Path) -> None:
    (tmp_path / "key").write_text(KEY + "\n")
    [inst] = config.load(write(tmp_path, api_key_file="key", username="admin"), {}).instances
    assert inst.api_key == KEY and inst.password_file == tmp_path / "key"


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        (
            {"api_key_env": "QBT_KEY"},
            [("instances[0].api_key_env", "environment variable QBT_KEY is not set")],
        ),
        (
            {"api_key_env": "K", "api_key_file": "key"},
            [("instances[0].api_key", "api_key_env, api_key_file are all set")],
        ),
        (
            {"api_key_env": "K", "username": "u", "password": "p"},
            [("instances[0].api_key_env", "api_key_env and password are both set")],
        ),
        ({"password": "p"}, [("instances[0].username", "is required but missing")]),
    ],
)
def test_key_mistakes(tmp_path: Path, auth: dict[str, str], expected: list[tuple[str, str]]) -> None:
    assert problems(write(tmp_path, **auth), {"K": KEY}) == expected


def test_the_key_is_a_bearer_token_and_no_login(rsps: responses.RequestsMock, clock: FakeClock) -> None:
    rsps.add(responses.GET, API + "app/webapiVersion", body="2.16.2")
    rsps.add(responses.GET, API + "app/version", body="v5.3.0")
    with Client(URL, "", "", clock=clock, api_key=KEY) as client:
        assert client.version() == "2.16.2"
        assert client.app_version() == "v5.3.0" and client.app_version() == "v5.3.0"
    assert [c.request.url for c in rsps.calls] == [API + "app/webapiVersion", API + "app/version"]
    assert all(c.request.headers["Authorization"] == f"Bearer {KEY}" for c in rsps.calls)


def test_a_refused_key_is_auth_failed_and_not_asked_again_at_once(
    rsps: responses.RequestsMock, clock: FakeClock
) -> None:
    refused = rsps.add(responses.GET, API + "app/webapiVersion", status=403, body=f"Forbidden {KEY}")
    with Client(URL, "", "", clock=clock, api_key=KEY) as client:
        with pytest.raises(InstanceError) as first:
            client.version()
        assert first.value.status == "AUTH_FAILED" and first.value.retry_in == KEY_BACKOFF_FIRST
        assert KEY not in str(first.value)
        clock.advance(KEY_BACKOFF_FIRST - 1)
        with pytest.raises(InstanceError):
            client.version()
        assert refused.call_count == 1, "no second try during the back-off"
        clock.advance(2)
        with pytest.raises(InstanceError) as second:
            client.version()
        assert refused.call_count == 2 and second.value.retry_in == 2 * KEY_BACKOFF_FIRST
    assert not any(str(c.request.url).endswith("auth/login") for c in rsps.calls)


def test_status_shows_both_versions() -> None:
    view = status.InstanceView(name="a", url=URL, status="OK", webapi="2.16.2", qbittorrent="v5.3.0")
    snapshot: dict[str, Any] = {
        "pid": 0,
        "probe_interval": 10,
        "updated_at": "2020-01-01T00:00:00+00:00",
        "instances": [view.__dict__],
    }
    assert "qBittorrent v5.3.0 (WebAPI 2.16.2)" in status.render(snapshot)
