"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import responses

from tests.fakes import FakeClock


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    """Canned HTTP answers for ``requests`` (no socket is opened)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
