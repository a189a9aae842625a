"""The README's quick start, run as written: the daemon in one terminal, commands in a second.

The second terminal is a clean shell: no active virtualenv, no ``MAGNETD_CONFIG``,
only the folder the README says to be in. qBittorrent listens where the example
config expects it (127.0.0.1:8080), inside the tests' private network namespace.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon import wait_for
from tests.qbt import Qbt, need_qbt
from tests.realparts import need_root

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "magnetd-readme-pass"


def block(marker: str) -> list[str]:
    """The command lines of the fenced block after ``<!-- quickstart:MARKER -->`` in the README."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(rf"<!-- quickstart:{marker} -->\n```sh\n(.*?)```", text, re.DOTALL)
    assert found, f"the README has no quickstart:{marker} block"
    return [line for line in found.group(1).splitlines() if line.strip()]


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A folder laid out like this repository after the quick start's install step."""
    folder = tmp_path / "magnetd"
    folder.mkdir()
    shutil.copy(ROOT / "magnetd.yaml.example", folder)
    (folder / ".venv").symlink_to(Path(sys.prefix))  # the venv the install step made
    return folder


@pytest.fixture
def qbt_8080(tmp_path: Path) -> Iterator[Qbt]:
    need_root("a qBittorrent on 127.0.0.1:8080 inside the tests' own network namespace")
    need_qbt()
    with Qbt(tmp_path / "qbt", port=8080, password=PASSWORD) as server:
        yield server


def second_terminal(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``command`` in a fresh shell: PATH without the venv, no MAGNETD_* variables."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(cwd.parent), "LANG": "C.UTF-8"}
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_quick_start_commands_work_as_written(checkout: Path, qbt_8080: Qbt) -> None:
    (install_and_run,) = block("run")
    run = install_and_run.rsplit(" && ", 1)[1]  # the install steps ran already (.venv is there)
    assert run.startswith("QBT_PASSWORD='your-webui-password' .venv/bin/magnetd run ")
    run = run.replace("your-webui-password", PASSWORD)
    env = {**os.environ, "PATH": "/usr/local/bin:/usr/bin:/bin"}
    env.pop("MAGNETD_CONFIG", None)
    log = (checkout.parent / "daemon.log").open("wb")
    daemon = subprocess.Popen(["bash", "-c", run], cwd=checkout, env=env, stdout=log, stderr=log)
    try:
        status, add, status_json = block("second-terminal")
        wait_for(lambda: (checkout / "magnetd-data" / "state" / "status.json").exists(), 30, "a status")
        shown = second_terminal(status, checkout)
        assert shown.returncode == 0, shown.stdout + shown.stderr
        assert re.search(r"local\s+OK", shown.stdout), shown.stdout
        added = second_terminal(add, checkout)
        assert added.returncode == 0, added.stderr
        infohash = re.search(r"btih:([0-9a-f]{40})", add)
        assert infohash
        api = qbt_8080.api()
        assert api.login()
        wait_for(
            lambda: infohash.group(1) in {t["hash"] for t in api.torrents()}, 20, "the magnet in qBittorrent"
        )
        as_json = second_terminal(status_json, checkout)
        assert as_json.returncode == 0, as_json.stderr
        wait_for(
            lambda: json.loads(second_terminal(status_json, checkout).stdout)["sent"] == 1, 20, "sent: 1"
        )
    finally:
        daemon.terminate()
        daemon.wait(30)
