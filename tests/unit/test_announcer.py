"""The announcer: once per state change, flaps folded, digests, held_too_long once per hold."""

from __future__ import annotations

import pytest

from magnetd.model import GateStatus, InstanceStatus
from magnetd.telemetry.announcer import Announcer
from magnetd.telemetry.events import Event, EventName
from tests.fakes import FakeClock


def announcer(clock: FakeClock, posted: list[Event], **settings: float) -> Announcer:
    return Announcer(posted.append, set(EventName), clock=clock, **settings)


def names(posted: list[Event]) -> list[str]:
    return [str(e.name) for e in posted]


def test_first_up_is_no_news_and_each_change_is_told_once(clock: FakeClock) -> None:
    posted: list[Event] = []
    a = announcer(clock, posted)
    a.gate_changed("wg", GateStatus.UP, "rtt 1 ms")
    a.gate_changed("wg", GateStatus.UP, "rtt 2 ms")  # a probe round with nothing new
    assert posted == []
    a.gate_changed("wg", GateStatus.DOWN, "no answer")
    a.gate_changed("wg", GateStatus.DOWN, "no answer")
    assert names(posted) == ["vpn_down"]
    assert posted[0].data["gate"] == "wg" and posted[0].message == "no answer"
    clock.now += 61
    a.gate_changed("wg", GateStatus.UP, "rtt 1 ms")
    assert names(posted) == ["vpn_down", "vpn_up"]


def test_a_flapping_gate_is_two_messages_and_the_last_is_the_truth(clock: FakeClock) -> None:
    posted: list[Event] = []
    a = announcer(clock, posted)
    a.gate_changed("wg", GateStatus.UP, "")
    for _ in range(10):
        a.gate_changed("wg", GateStatus.DOWN, "no answer")
        clock.now += 1
        a.gate_changed("wg", GateStatus.UP, "back")
        clock.now += 1
    assert names(posted) == ["vpn_down"]
    due = a.next_due()
    assert due is not None and due == pytest.approx(1000 + 60)
    clock.now = due
    a.tick()
    assert names(posted) == ["vpn_down", "vpn_up"]
    assert posted[1].data["flaps"] == 19
    assert a.next_due() is None


def test_a_flap_that_ends_where_it_was_told_sends_nothing_more(clock: FakeClock) -> None:
    posted: list[Event] = []
    a = announcer(clock, posted)
    a.gate_changed("wg", GateStatus.DOWN, "no answer")
    a.gate_changed("wg", GateStatus.UP, "")
    a.gate_changed("wg", GateStatus.DOWN, "no answer")
    clock.now += 61
    a.tick()
    assert names(posted) == ["vpn_down"]


def test_instances_down_up_and_auth_but_not_vpn_down(clock: FakeClock) -> None:
    posted: list[Event] = []
    a = announcer(clock, posted, flap_window=0)
    a.instance_changed("box", InstanceStatus.OK, "")
    a.instance_changed("box", InstanceStatus.VPN_DOWN, "gate wg down")
    a.instance_changed("box", InstanceStatus.OK, "")
    a.instance_changed("box", InstanceStatus.UNREACHABLE, "connection refused by 127.0.0.1:8080")
    a.instance_changed("box", InstanceStatus.OK, "")
    a.instance_changed("nas", InstanceStatus.AUTH_FAILED, "refused; next try 10:52Z")
    assert names(posted) == ["instance_down", "instance_up", "auth_failed"]
    assert posted[0].data == {"instance": "box", "status": "UNREACHABLE"}


def test_hold_then_held_too_long_once_then_drained(clock: FakeClock) -> None:
    posted: list[Event] = []
    a = announcer(clock, posted, held_after=600)
    a.holding(5, "no healthy instance")
    a.still_holding(5, 599)
    clock.now += 700
    a.still_holding(5, 700)
    a.still_holding(6, 760)
    a.drained(6, 9)
    assert names(posted) == ["holding", "held_too_long", "drained"]
    assert posted[2].data == {"files": 6, "magnets": 9, "waited_seconds": 700}
    clock.now += 100
    a.holding(1, "no healthy instance")  # a new hold: held_too_long may come again
    clock.now += 700
    a.still_holding(1, 700)
    assert names(posted)[-2:] == ["holding", "held_too_long"]


def test_file_failures_in_one_window_are_one_digest(clock: FakeClock) -> None:
    posted: list[Event] = []
    a = announcer(clock, posted, digest_seconds=30)
    for index in range(10):
        a.file_outcome(EventName.FILE_FAILED, f"bad-{index}.magnet", "not_magnet", None)
        clock.now += 1
    assert posted == [] and a.next_due() == pytest.approx(1030)
    clock.now = 1030
    a.tick()
    assert names(posted) == ["file_failed"]
    digest = posted[0]
    assert digest.data["count"] == 10
    assert [f["file"] for f in digest.data["files"]] == [f"bad-{i}.magnet" for i in range(10)]
    assert "bad-9.magnet: not_magnet" in digest.message


def test_outcomes_no_target_wants_cost_nothing(clock: FakeClock) -> None:
    posted: list[Event] = []
    a = Announcer(posted.append, {EventName.FILE_FAILED}, clock=clock)
    a.file_outcome(EventName.FILE_SENT, "x.magnet", None, "box")
    assert a.next_due() is None
    a.gate_changed("wg", GateStatus.DOWN, "no answer")  # not wanted by any target: not posted
    assert posted == []
