"""Skips for missing real parts, which become failures when ``MAGNETD_REQUIRE_REAL=1``.

A test that needs a real program (qbittorrent-nox, root, ``ip``, journald)
calls :func:`need` instead of ``pytest.skip``: on a laptop without the part it
skips with the reason; in CI, where every part must be present, it fails.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def required() -> bool:
    """Whether CI demands every real part (``MAGNETD_REQUIRE_REAL=1``)."""
    return os.environ.get("MAGNETD_REQUIRE_REAL", "") not in ("", "0")


def missing(reason: str) -> NoReturn:
    """Skip, or fail when real parts are required."""
    if required():
        pytest.fail(f"real part missing (MAGNETD_REQUIRE_REAL=1): {reason}", pytrace=False)
    pytest.skip(reason)


def need_program(name: str) -> str:
    """The path of ``name``, or a skip/failure naming the Debian package to install."""
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    if path is None:
        missing(f"{name} is not installed")
    return path


def need_root(what: str) -> None:
    """Skip/fail unless running as root (network namespaces, journald)."""
    if os.geteuid() != 0:
        missing(f"{what} needs root")
