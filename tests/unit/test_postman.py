"""The postman against real local receivers: retries, isolation of slow targets, overflow, close."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from magnetd import logs
from magnetd.telemetry.events import Event, EventName
from magnetd.telemetry.postman import Postman
from magnetd.telemetry.targets import Outcome, Result, TargetSpec
from tests.receiver import Receiver
from tests.unit.test_targets import SECRET, closed_port

FAST = (0.01, 0.02)
Make = Callable[..., Postman]


def event(name: EventName = EventName.VPN_DOWN, n: int = 0) -> Event:
    return Event(name, f"title {n}", f"message {n}", {"n": n})


def hook(name: str, url: str, events: frozenset[EventName] | None = None) -> TargetSpec:
    return TargetSpec(name, events, webhook=url, headers={"X-Token": SECRET})


class Results:
    """An ``on_result`` callback that lets a test wait for final results."""

    def __init__(self) -> None:
        self.got: list[tuple[str, Event, Result]] = []
        self.changed = threading.Condition()

    def __call__(self, target: str, event: Event, result: Result) -> None:
        with self.changed:
            self.got.append((target, event, result))
            self.changed.notify_all()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[tuple[str, Event, Result]]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.got) >= count, timeout), self.got
            return list(self.got)


@pytest.fixture
def results() -> Results:
    return Results()


@pytest.fixture
def make() -> Iterator[Make]:
    """Builds postmen, and closes them after the test even when it fails."""
    made: list[Postman] = []

    def build(*args: Any, **kwargs: Any) -> Postman:
        made.append(Postman(*args, **kwargs))
        return made[-1]

    yield build
    for postman in made:
        postman.close(0)


@pytest.fixture(autouse=True)
def fresh_logging() -> Iterator[None]:
    """structlog's defaults (every level passes), whatever an earlier test configured."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


@pytest.fixture
def json_log() -> io.StringIO:
    """magnetd's real JSON log output, as a daemon would write it (debug level)."""
    stream = io.StringIO()
    logs.setup("json", level="debug", stream=stream)
    return stream


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_5xx_is_retried_with_the_same_id_until_delivered(make: Make, results: Results) -> None:
    with Receiver(codes=[500, 503, 200]) as receiver, capture_logs() as captured:
        postman = make([hook("hook", receiver.url)], backoff=FAST, on_result=results)
        sent = event()
        postman.post(sent)
        [(target, got, result)] = results.wait_for(1)
        requests = receiver.wait_for(3)
        postman.close(1)
    assert (target, got.id, result.outcome, result.tries) == ("hook", sent.id, Outcome.DELIVERED, 3)
    assert [r.json()["id"] for r in requests] == [sent.id] * 3
    assert postman.counts() == {"hook": {"delivered": 1, "failed": 0, "dropped": 0}}
    sent_logs = [e for e in captured if e["event"] == "notify_sent"]
    assert sent_logs == [
        {"event": "notify_sent", "log_level": "debug", "target": "hook", "notification": "vpn_down"}
        | {"id": sent.id, "tries": 3}
    ]


def test_4xx_is_tried_once_then_logged_and_counted(make: Make, results: Results) -> None:
    with Receiver(default=404) as receiver, capture_logs() as captured:
        postman = make([hook("hook", receiver.url)], backoff=FAST, on_result=results)
        sent = event()
        postman.post(sent)
        [(_, _, result)] = results.wait_for(1)
        time.sleep(0.2)
        assert len(receiver.requests) == 1
        postman.close(1)
    assert result.outcome == Outcome.FAILED and result.tries == 1
    assert postman.counts()["hook"] == {"delivered": 0, "failed": 1, "dropped": 0}
    failed = [e for e in captured if e["event"] == "notify_failed"]
    assert failed == [
        {"event": "notify_failed", "log_level": "warning", "target": "hook", "notification": "vpn_down"}
        | {"id": sent.id, "detail": "HTTP 404", "tries": 1}
    ]


def test_retries_stop_after_tries_and_the_final_result_is_failed(make: Make, results: Results) -> None:
    with Receiver(default=503) as receiver:
        postman = make([hook("hook", receiver.url)], tries=4, backoff=FAST, on_result=results)
        postman.post(event())
        [(_, _, result)] = results.wait_for(1)
        postman.close(1)
        assert len(receiver.requests) == 4
    assert (result.outcome, result.detail, result.tries) == (Outcome.FAILED, "HTTP 503", 4)


def test_a_hung_receiver_delays_neither_post_nor_other_targets(make: Make, results: Results) -> None:
    with Receiver(hold=20) as slow, Receiver() as fast:
        postman = make([hook("slow", slow.url), hook("fast", fast.url)], backoff=FAST, on_result=results)
        started = time.monotonic()
        for n in range(20):
            postman.post(event(n=n))
        # A post() that waited for the hung receiver would take its hold (20 s); a loaded
        # machine may take a while for 20 queue puts, never that long.
        assert time.monotonic() - started < 5.0, "post() never waits for a delivery"
        slow.wait_for(1)
        delivered = results.wait_for(20, timeout=3)
        assert {(t, r.outcome) for t, _, r in delivered} == {("fast", Outcome.DELIVERED)}
        assert len(slow.requests) == 1, "the slow target still holds its first event"
        assert postman.counts()["fast"]["delivered"] == 20
        assert postman.close(0.2) is False, "the slow delivery is still running"
        assert postman.counts()["slow"] == {"delivered": 0, "failed": 0, "dropped": 19}


def test_a_full_queue_drops_the_oldest_and_logs_once_per_burst(make: Make, results: Results) -> None:
    with Receiver(hold=20) as receiver, capture_logs() as captured:
        postman = make([hook("hook", receiver.url)], queue_size=2, backoff=FAST, on_result=results)
        sent = [event(n=n) for n in range(10)]
        postman.post(sent[0])
        receiver.wait_for(1)  # sent[0] is in flight, not queued
        for e in sent[1:6]:
            postman.post(e)  # queue keeps the newest two: 4 and 5
        assert postman.counts()["hook"]["dropped"] == 3
        receiver.release()
        results.wait_for(3)
        got = [r.json()["id"] for r in receiver.wait_for(3)]
        assert got == [sent[0].id, sent[4].id, sent[5].id]
        receiver.block()  # a second burst, once the first one is over
        postman.post(sent[6])
        receiver.wait_for(4)
        for e in sent[7:]:
            postman.post(e)
        receiver.release()
        results.wait_for(6)
        postman.close(1)
    dropped = [e for e in captured if e["event"] == "notify_dropped"]
    assert [(e["id"], e["reason"]) for e in dropped] == [
        (sent[1].id, "queue_full"),
        (sent[7].id, "queue_full"),
    ]
    assert postman.counts()["hook"] == {"delivered": 6, "failed": 0, "dropped": 4}


def test_each_target_gets_the_events_it_chose(make: Make) -> None:
    with Receiver() as default, Receiver() as chooser:
        chosen = frozenset({EventName.FILE_SENT})
        postman = make([hook("default", default.url), hook("chooser", chooser.url, chosen)])
        for name in (EventName.VPN_DOWN, EventName.FILE_SENT, EventName.TEST):
            postman.post(event(name))
        assert postman.close(5)
        assert [r.headers["X-Magnetd-Event"] for r in default.requests] == ["vpn_down", "test"]
        assert [r.headers["X-Magnetd-Event"] for r in chooser.requests] == ["file_sent", "test"]


def test_deliver_now_answers_per_target_in_parallel(make: Make) -> None:
    only_vpn = frozenset({EventName.VPN_DOWN})
    with Receiver() as good, Receiver(default=404) as gone, Receiver(hold=20) as hung:
        specs = [
            hook("good", good.url, only_vpn),
            hook("gone", gone.url),
            hook("refused", f"http://127.0.0.1:{closed_port()}/x", only_vpn),
            hook("hung", hung.url),
            TargetSpec("script", None, command=("false",)),
        ]
        postman = make(specs, backoff=FAST)
        started = time.monotonic()
        answers = postman.deliver_now(event(EventName.TEST), timeout=1.0)
        elapsed = time.monotonic() - started
        assert 0.9 < elapsed < 3.0, "all at once, bounded by the timeout"
        by_target = {name: (r.outcome, r.detail, r.tries) for name, r in answers.items()}
        assert by_target == {
            "good": (Outcome.DELIVERED, "HTTP 200", 1),
            "gone": (Outcome.FAILED, "HTTP 404", 1),
            "refused": (Outcome.FAILED, "connection failed: Connection refused", 3),
            "hung": (Outcome.FAILED, "no result within 1 s", 1),
            "script": (Outcome.FAILED, "exit 1", 1),
        }
        only = postman.deliver_now(event(EventName.VPN_UP), timeout=0.5)
        assert set(only) == {"gone", "hung", "script"}, "good and refused chose only vpn_down"
        assert postman.counts()["good"]["delivered"] == 1 and postman.counts()["hung"]["failed"] == 2
        postman.close(0.1)


def test_close_interrupts_back_off_and_refuses_new_events(make: Make, results: Results) -> None:
    with Receiver(default=500) as receiver:
        postman = make([hook("hook", receiver.url)], backoff=(30.0,), on_result=results)
        postman.post(event())
        receiver.wait_for(1)
        started = time.monotonic()
        assert postman.close(5)
        assert time.monotonic() - started < 1, "the 30 s back-off did not hold close()"
        [(_, _, result)] = results.wait_for(1)
        assert (result.outcome, result.tries) == (Outcome.FAILED, 1)
        postman.post(event())
        time.sleep(0.1)
        assert len(receiver.requests) == 1


def test_close_tries_what_is_queued_once_and_drops_the_rest_at_the_deadline(make: Make) -> None:
    with Receiver(hold=20) as held, Receiver(default=500) as flaky, capture_logs() as captured:
        postman = make([hook("held", held.url), hook("flaky", flaky.url)], backoff=(30.0,))
        for n in range(3):
            postman.post(event(n=n))
        held.wait_for(1)
        flaky.wait_for(1)  # the first event failed; its worker waits out the 30 s back-off
        started = time.monotonic()
        assert postman.close(0.5) is False, "held's first delivery is still running"
        assert time.monotonic() - started < 2
        assert [r.json()["message"] for r in flaky.requests] == ["message 0", "message 1", "message 2"]
        assert postman.counts()["flaky"] == {"delivered": 0, "failed": 3, "dropped": 0}
        assert postman.counts()["held"] == {"delivered": 0, "failed": 0, "dropped": 2}
    dropped = [e for e in captured if e["event"] == "notify_dropped"]
    assert dropped == [
        {"event": "notify_dropped", "log_level": "warning", "target": "held", "reason": "closing", "count": 2}
    ]


class Broken:
    """A target with a bug: the worker must survive it."""

    name = "broken"
    events: frozenset[EventName] | None = None

    def deliver(self, event: Event) -> Result:
        raise RuntimeError(SECRET)


def test_a_target_that_raises_fails_the_delivery_and_the_worker_goes_on(make: Make, results: Results) -> None:
    postman = make([Broken()], on_result=results)
    postman.post(event(n=1))
    postman.post(event(n=2))
    got = results.wait_for(2)
    assert [r.detail for _, _, r in got] == ["target raised RuntimeError"] * 2
    postman.close(1)


def test_no_secret_in_any_log_line_or_detail(make: Make, json_log: io.StringIO, results: Results) -> None:
    with Receiver(default=404) as gone, Receiver(default=500) as e500:
        specs = [
            hook("gone", f"{gone.url}?token={SECRET}"),
            hook("e500", f"{e500.url}?token={SECRET}"),
            hook("refused", f"http://127.0.0.1:{closed_port()}/{SECRET}?token={SECRET}"),
            TargetSpec("phone", None, apprise=f"json://127.0.0.1:{closed_port()}/{SECRET}?token={SECRET}"),
            TargetSpec("script", None, command=("false", SECRET)),
            TargetSpec("missing", None, command=(f"/nonexistent/{SECRET}",)),
        ]
        postman = make([*specs, Broken()], queue_size=1, backoff=FAST, on_result=results)
        for n in range(3):
            postman.post(event(n=n))
        answers = postman.deliver_now(event(EventName.TEST), timeout=5)
        postman.close(5)
    assert all(not r.delivered for r in answers.values())
    details = [r.detail for r in answers.values()] + [r.detail for _, _, r in results.got]
    assert all(SECRET not in d for d in details), details
    output = json_log.getvalue()
    assert "notify_failed" in output and SECRET not in output
    failed = {line["target"] for line in lines(json_log) if line["event"] == "notify_failed"}
    assert failed == {"gone", "e500", "refused", "phone", "script", "missing", "broken"}
