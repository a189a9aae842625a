"""Fixtures for integration tests: a real qbittorrent-nox and the real daemon."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from pathlib import Path

import fastbencode
import pytest

from tests.daemon import Daemon, instance
from tests.netns import Gateway
from tests.qbt import Qbt, need_qbt


def magnet(name: str = "magnetd-test") -> tuple[str, str]:
    """A random magnet link and its infohash (hex)."""
    infohash = secrets.token_hex(20)
    return f"magnet:?xt=urn:btih:{infohash}&dn={name}", infohash


def torrent_file(name: str = "magnetd-test") -> tuple[bytes, str]:
    """A small valid v1 ``.torrent`` and its infohash."""
    info = {
        b"name": name.encode(),
        b"piece length": 16384,
        b"pieces": secrets.token_bytes(20),
        b"length": 1000,
    }
    return fastbencode.bencode({b"info": info}), hashlib.sha1(fastbencode.bencode(info)).hexdigest()  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def qbt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Qbt]:
    """One real qbittorrent-nox on 127.0.0.1 for the module's tests."""
    need_qbt()
    server = Qbt(tmp_path_factory.mktemp("qbt"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def daemon(tmp_path: Path, qbt: Qbt) -> Iterator[Daemon]:
    """The daemon configured for ``qbt``, not started yet; stopped after the test."""
    runner = Daemon(tmp_path / "magnetd", [instance("local", qbt.url, qbt.password)])
    yield runner
    if runner.alive():
        runner.stop()


@pytest.fixture
def two_qbts(tmp_path: Path) -> Iterator[tuple[Qbt, Qbt]]:
    need_qbt()
    primary = Qbt(tmp_path / "qbt-primary", host_header_validation=False)  # reached through a relay
    secondary = Qbt(tmp_path / "qbt-secondary", host_header_validation=False)  # so may the fallback
    primary.start()
    secondary.start()
    yield primary, secondary
    primary.stop()
    secondary.stop()


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    gw = Gateway().create()
    yield gw
    gw.delete()


@pytest.fixture
def own_qbt(tmp_path: Path) -> Iterator[Qbt]:
    """A qbittorrent-nox of the test's own, which it may stop and start."""
    need_qbt()
    server = Qbt(tmp_path / "own-qbt")
    server.start()
    yield server
    server.stop()
