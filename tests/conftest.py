"""Session set-up: as root, every test runs in a private network namespace.

The namespace has only its own loopback, so nothing a test starts
(qbittorrent-nox, the daemon, ping) can send traffic anywhere else.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess

import pytest

CLONE_NEWNET = 0x40000000
_namespace: str | None = None


def _enter_private_netns() -> str | None:
    if os.geteuid() != 0 or shutil.which("ip") is None or os.environ.get("MAGNETD_TEST_NETNS") == "0":
        return None
    name = f"magnetd-test-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns failed")
    finally:
        os.close(fd)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    return name


def pytest_configure(config: pytest.Config) -> None:
    """Runs in the main thread before any test thread or subprocess exists."""
    global _namespace
    _namespace = _enter_private_netns()


def pytest_unconfigure(config: pytest.Config) -> None:
    if _namespace:
        subprocess.run(["ip", "netns", "delete", _namespace], check=False)


def pytest_report_header(config: pytest.Config) -> str:
    where = f"private network namespace {_namespace}" if _namespace else "host network (not root)"
    return f"magnetd tests run in: {where}; MAGNETD_REQUIRE_REAL={os.environ.get('MAGNETD_REQUIRE_REAL', '')}"


@pytest.fixture(scope="session")
def netns() -> str | None:
    """The private namespace the tests run in (None when not root)."""
    return _namespace
