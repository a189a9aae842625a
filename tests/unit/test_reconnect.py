"""The reconnect command: when it runs, how often, and how long VPN-bound work waits."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from magnetd.health.reconnect import Reconnector
from magnetd.model import GateStatus
from tests.fakes import FakeClock

Reports = list[tuple[int | None, float, str]]


def recorder(reports: Reports) -> Callable[[int | None, float, str], None]:
    return lambda code, seconds, detail: reports.append((code, seconds, detail))


def test_runs_on_down_once_per_wait_and_the_wait_is_not_extended(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    script = f"open({str(runs)!r}, 'a').write('x')"
    clock, reports = FakeClock(100.0), Reports()
    r = Reconnector([sys.executable, "-c", script], 30, recorder(reports), clock=clock)
    r.checked(GateStatus.UP)
    assert not r.holding() and r.deadline() is None
    r.checked(GateStatus.DOWN)
    r.join(10)
    assert runs.read_text() == "x" and r.holding() and r.deadline() == 130
    clock.now += 10
    r.checked(GateStatus.DOWN)  # still down, within the wait: not run again
    r.join(10)
    assert runs.read_text() == "x"
    clock.now += 25
    r.checked(GateStatus.DOWN)  # a wait later: runs again, but the wait still ends at 130
    r.join(10)
    assert runs.read_text() == "xx" and not r.holding() and r.deadline() == 130
    assert [report[0] for report in reports] == [0, 0]
    r.checked(GateStatus.UP)
    assert r.deadline() is None


def test_a_failing_or_missing_command_is_reported() -> None:
    reports, clock = Reports(), FakeClock(100.0)
    failing = Reconnector(
        [sys.executable, "-c", "import sys; sys.exit('wg0 not found')"], 5, recorder(reports), clock=clock
    )
    failing.checked(GateStatus.DOWN)
    failing.join(10)
    missing = Reconnector(["/nonexistent/reconnect"], 5, recorder(reports), clock=clock)
    missing.checked(GateStatus.DOWN)
    missing.join(10)
    assert reports[0][0] == 1 and "wg0 not found" in reports[0][2]
    assert reports[1][0] is None and "could not start" in reports[1][2]
