"""A new user's first evening, with the real daemon and a real qbittorrent-nox.

The quick start's placeholder password is refused: the status and the log say
which source was used, when magnetd tries again and how to make it now, and
saving the fixed password file does make it now (a save with a typo in the
config is refused, and the next save is still noticed). A wrong address says
"connection refused by ..." rather than urllib3's text, which stays in the
debug log.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemon import Daemon, drop, wait_for
from tests.integration.conftest import magnet
from tests.qbt import Qbt, free_port, need_qbt

pytestmark = pytest.mark.real

PLACEHOLDER = "your-webui-password"


@pytest.fixture
def qbt(tmp_path: Path) -> Iterator[Qbt]:
    """A fresh instance: the failed logins here count towards its ban, nobody else's."""
    need_qbt()
    with Qbt(tmp_path / "qbt") as server:
        yield server


def view(daemon: Daemon, name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(i for i in daemon.status()["instances"] if i["name"] == name)
    return found


def status_is(daemon: Daemon, name: str, status: str) -> dict[str, Any] | None:
    current = view(daemon, name)
    return current if current["status"] == status else None


def test_wrong_password_says_what_to_do_and_a_saved_fix_retries_at_once(tmp_path: Path, qbt: Qbt) -> None:
    secret = tmp_path / "qbt.password"
    secret.write_text(PLACEHOLDER + "\n")
    secret.chmod(0o644)
    port = free_port()
    nowhere = {"name": "nowhere", "url": f"http://127.0.0.1:{port}/", "username": "admin"}
    daemon = Daemon(
        tmp_path / "magnetd",
        [
            {"name": "local", "url": qbt.url, "username": "admin", "password_file": str(secret)},
            {**nowhere, "password_env": "MAGNETD_TEST_PW_NOWHERE", "_password": "unused"},
        ],
        probe_interval=120,  # no probe round in this test but the first: only a saved file brings it back
    )
    daemon.start_args = ["--log-target", "json", "--log-level", "debug"]
    with daemon:
        started = dt.datetime.now(dt.UTC)
        daemon.start()
        local = wait_for(lambda: status_is(daemon, "local", "AUTH_FAILED"), 20, "AUTH_FAILED")
        assert local is not None
        detail = local["detail"]
        assert detail.startswith("qBittorrent refused the username or password")  # 4.x: Fails.; 5.2+: 401
        assert f"(password from password_file {secret});" in detail
        at = re.search(r"next login attempt at (\S+Z), in 10 min;", detail)
        assert at, detail
        wait = (dt.datetime.fromisoformat(at.group(1).replace("Z", "+00:00")) - started).total_seconds()
        assert 590 <= wait <= 620
        assert "save the password file or the config, or reload (`systemctl reload magnetd`" in detail
        assert "retry at once" in detail
        changed = [e for e in daemon.events("instance_status_changed") if e["instance"] == "local"]
        assert [(e["status"], e["detail"]) for e in changed] == [("AUTH_FAILED", detail)]
        assert f"password from password_file {secret}" in daemon.command("status").stdout

        unreachable = view(daemon, "nowhere")
        assert (unreachable["status"], unreachable["detail"]) == (
            "UNREACHABLE",
            f"connection refused by 127.0.0.1:{port}",
        )
        raw = [e for e in daemon.events("instance_error") if e["instance"] == "nowhere"]
        assert raw and raw[0]["level"] == "debug" and f"port={port}" in raw[0]["raw"]

        warnings = [e["detail"] for e in daemon.events("config_warning")]
        assert f"password_file {secret} can be read by other users (mode 644): chmod 600 {secret}" in warnings

        good = daemon.config_path.read_text()
        daemon.config_path.write_text(good + "probe_intervl: 1\n")  # saved with a typo: refused
        [refused] = wait_for(lambda: daemon.events("config_reload_failed"), 10, "the typo refused")
        assert refused["trigger"] == "file_changed" and refused["changed"] == [str(daemon.config_path)]
        assert any(p.startswith("probe_intervl: unknown key") for p in refused["problems"])

        daemon.config_path.write_text(good)  # the second save is noticed too
        [reloaded] = wait_for(lambda: daemon.events("config_reloaded"), 10, "the second save reloaded")
        assert reloaded["trigger"] == "file_changed"
        wait_for(lambda: status_is(daemon, "local", "AUTH_FAILED"), 10, "the same wrong password refused")

        secret.write_text(qbt.password + "\n")
        # far sooner than the 120 s probe interval and the 10 min login back-off: the save retried it
        wait_for(lambda: status_is(daemon, "local", "OK"), 15, "the fixed password file retried")
        assert daemon.events("config_reloaded")[-1]["changed"] == [str(secret)]

        link, infohash = magnet("first-evening")
        drop(daemon.inbox, "first.magnet", link)
        wait_for(lambda: daemon.files(daemon.sent) == ["first.magnet"], 20, "the magnet sent")
        api = qbt.api()
        assert api.login()
        assert [t["hash"] for t in api.torrents(hashes=infohash)] == [infohash]

    assert PLACEHOLDER not in daemon.output() and qbt.password not in daemon.output()
