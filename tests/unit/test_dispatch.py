"""The dispatcher's decisions, with fake instances: failover, holding, refusals, bounded retries."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from magnetd.config import Config, Folders, Instance, Secret
from magnetd.delivery import dispatch
from magnetd.delivery.courier import Courier
from magnetd.delivery.dispatch import Dispatcher, Flight
from magnetd.delivery.settler import MAX_ATTEMPTS, Counters, Job, Settler
from magnetd.health.state import Health
from magnetd.intake import items
from magnetd.intake.inbox import Inbox
from magnetd.model import Arrival, InstanceStatus, Item, Seen
from magnetd.records.spool import Spool, ensure_folders
from tests.fakes import FakeClient, FakeClock


def launch(dispatcher: Dispatcher, jobs: Sequence[Job]) -> Flight | None:
    """Route ``jobs`` that are meant to go to one instance whole; None: held."""
    routed = dispatcher.route(jobs)
    assert len(routed.flights) <= 1, "the batch was split"
    return routed.flights[0] if routed.flights else None


def setup(
    tmp_path: Path,
    clients: dict[str, FakeClient],
    courier: Courier | None = None,
    keepalive: Callable[[], None] = lambda: None,
) -> tuple[Dispatcher, Inbox, Config]:
    folders = Folders(tmp_path / "in", tmp_path / "sent", tmp_path / "failed", tmp_path / "state")
    ensure_folders(folders)
    instances = tuple(Instance(n, f"http://{n}/", "u", Secret("p")) for n in clients)
    config = Config(path=tmp_path / "c.yaml", folders=folders, instances=instances)
    health = Health(instances)
    for name in clients:
        health.set_instance(name, InstanceStatus.OK)
    inbox = Inbox(folders.inbox, clock=CLOCK)
    dispatcher = Dispatcher(
        config,
        clients,  # type: ignore[arg-type]  # duck-typed fakes of Client
        health,
        None,
        Settler(Spool(folders), inbox, Counters()),
        sleep=lambda _: None,
        courier=courier,
        keepalive=keepalive,
    )
    return dispatcher, inbox, config


CLOCK = FakeClock()
PAST_BACKOFF = 3600.0  # seconds: more than any retry back-off


def drop(inbox: Inbox, config: Config, name: str, text: str) -> Path:
    path = config.folders.inbox / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    inbox.note(Seen(path, Arrival.MOVED))
    return path


def link() -> str:
    return f"magnet:?xt=urn:btih:{secrets.token_hex(20)}"


def run(dispatcher: Dispatcher, inbox: Inbox) -> bool:
    jobs = [job for w in inbox.due() if (job := dispatcher.load(w)) is not None]
    if not jobs:
        return True
    flight = launch(dispatcher, jobs)
    return flight is not None and dispatcher.land(flight)


def test_failover_sends_the_whole_batch_to_the_next_instance(tmp_path: Path) -> None:
    primary, secondary = FakeClient(fail=InstanceStatus.TIMEOUT), FakeClient()
    dispatcher, inbox, config = setup(tmp_path, {"primary": primary, "secondary": secondary})
    drop(inbox, config, "a.magnet", link())
    drop(inbox, config, "books/b.magnet", link())
    assert run(dispatcher, inbox)
    assert sorted(p.name for p in config.folders.sent.rglob("*.magnet")) == ["a.magnet", "b.magnet"]
    assert [i.name for i in dispatcher.health.usable()] == ["secondary"]
    categories = {options.category for _, options in secondary.adds}
    assert categories == {None, "books"}


def test_launch_returns_while_the_courier_adds_and_land_settles_in_order(tmp_path: Path) -> None:
    client = FakeClient()
    client.gate = threading.Event()
    courier = Courier()
    dispatcher, inbox, config = setup(tmp_path, {"only": client}, courier)
    try:
        for name in ("a", "b", "c"):
            drop(inbox, config, f"{name}.magnet", link())
        flights = [launch(dispatcher, [job]) for w in inbox.due() if (job := dispatcher.load(w))]
        assert all(f is not None and not f.verdict.done() for f in flights)  # the owner was not blocked
        assert list(config.folders.sent.iterdir()) == []
        client.gate.set()
        assert all(dispatcher.land(f) for f in flights if f is not None)
    finally:
        courier.close()
    assert sorted(p.name for p in config.folders.sent.iterdir()) == ["a.magnet", "b.magnet", "c.magnet"]
    assert client.threads == {"magnetd-courier"} and len(inbox) == 0


def test_a_flight_that_fails_on_the_courier_lands_on_the_next_instance(tmp_path: Path) -> None:
    primary, secondary = FakeClient(fail=InstanceStatus.UNREACHABLE), FakeClient()
    primary.gate = threading.Event()
    courier = Courier()
    dispatcher, inbox, config = setup(tmp_path, {"primary": primary, "secondary": secondary}, courier)
    try:
        drop(inbox, config, "a.magnet", link())
        drop(inbox, config, "b.magnet", link())
        flights = [launch(dispatcher, [job]) for w in inbox.due() if (job := dispatcher.load(w))]
        assert [f.instance.name for f in flights if f] == ["primary", "primary"]  # launched before it failed
        primary.gate.set()
        assert all(dispatcher.land(f) for f in flights if f is not None)
    finally:
        courier.close()
    assert sorted(p.name for p in config.folders.sent.iterdir()) == ["a.magnet", "b.magnet"]
    assert len(secondary.adds) == 2 and [i.name for i in dispatcher.health.usable()] == ["secondary"]
    # one exchange went to it (its first call, the look for duplicates, failed); the second
    # batch, queued behind the failure, skipped it
    assert (primary.calls["present"], primary.calls["add_magnets"]) == (1, 0)


def test_batches_queued_behind_a_failure_skip_the_failed_instance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    primary, secondary = FakeClient(fail=InstanceStatus.TIMEOUT), FakeClient()
    primary.gate = threading.Event()
    monkeypatch.setattr(dispatch, "KEEPALIVE", 0.01)
    courier = Courier()
    dispatcher, inbox, config = setup(
        tmp_path, {"primary": primary, "secondary": secondary}, courier, keepalive=primary.gate.set
    )
    try:
        for name in "abcd":
            drop(inbox, config, f"{name}.magnet", link())
        flights = [launch(dispatcher, [job]) for w in inbox.due() if (job := dispatcher.load(w))]
        # the primary's first add hangs until the loop, waiting for it, calls keepalive
        assert all(dispatcher.land(f) for f in flights if f is not None)
    finally:
        courier.close()
    # one exchange went to it (failing at its first call); the three queued behind it never did
    assert (primary.calls["present"], primary.calls["add_magnets"]) == (1, 0)
    assert len(secondary.adds) == 4 and len(list(config.folders.sent.iterdir())) == 4


def test_a_file_replaced_while_its_batch_was_out_is_read_again(tmp_path: Path) -> None:
    client = FakeClient()
    client.gate = threading.Event()
    courier = Courier()
    dispatcher, inbox, config = setup(tmp_path, {"only": client}, courier)
    first, second = link(), link()
    try:
        path = drop(inbox, config, "a.magnet", first)
        flight = launch(dispatcher, [job for w in inbox.due() if (job := dispatcher.load(w))])
        assert flight is not None
        replacement = path.with_name(".a.magnet.tmp")
        replacement.write_text(second)
        replacement.rename(path)  # a producer replaces the file while the batch is out
        client.gate.set()
        assert dispatcher.land(flight)
        assert path.read_text() == second and list(config.folders.sent.iterdir()) == []
        assert run(dispatcher, inbox)  # due again at once, with what the file holds now
    finally:
        courier.close()
    assert (config.folders.sent / "a.magnet").read_text() == second
    assert {u.split("btih:")[1][:40] for uris, _ in client.adds for u in uris} == {
        first.split("btih:")[1],
        second.split("btih:")[1],
    }


def test_a_flight_with_no_instance_left_is_held(tmp_path: Path) -> None:
    courier = Courier()
    dispatcher, inbox, config = setup(tmp_path, {"only": FakeClient(fail=InstanceStatus.TIMEOUT)}, courier)
    try:
        path = drop(inbox, config, "a.magnet", link())
        with capture_logs() as events:
            flight = launch(dispatcher, [job for w in inbox.due() if (job := dispatcher.load(w))])
            assert flight is not None and not dispatcher.land(flight)
            assert launch(dispatcher, []) is None  # and nothing is launched while nothing is healthy
    finally:
        courier.close()
    assert path.exists() and len(inbox) == 1 and list(config.folders.failed.iterdir()) == []
    # the supervisor logs `files_held` once, with the whole inbox; a batch never does
    assert "batch_failover" in [e["event"] for e in events]
    assert "files_held" not in [e["event"] for e in events]


def test_nothing_healthy_holds_files_untouched(tmp_path: Path) -> None:
    dispatcher, inbox, config = setup(tmp_path, {"only": FakeClient(fail=InstanceStatus.UNREACHABLE)})
    path = drop(inbox, config, "a.magnet", link())
    assert not run(dispatcher, inbox)
    assert path.exists() and len(inbox) == 1
    assert list(config.folders.failed.iterdir()) == []


def test_bad_lines_go_to_failed_and_good_ones_are_sent(tmp_path: Path) -> None:
    dispatcher, inbox, config = setup(tmp_path, {"only": FakeClient()})
    good = link()
    drop(inbox, config, "mixed.magnet", f"{good}\nnot-a-link\n")
    assert run(dispatcher, inbox)
    assert (config.folders.sent / "mixed.magnet").read_text() == good + "\n"
    assert (config.folders.failed / "mixed.magnet").read_text() == "not-a-link\n"
    assert '"line": 2' in (config.folders.failed / "mixed.magnet.error.json").read_text()


def test_magnets_qbittorrent_refuses_fail_as_rejected(tmp_path: Path) -> None:
    dispatcher, inbox, config = setup(tmp_path, {"only": FakeClient(refuse=True)})
    drop(inbox, config, "refused.magnet", link())
    assert run(dispatcher, inbox)
    record = (config.folders.failed / "refused.magnet.error.json").read_text()
    assert '"reason": "rejected"' in record and '"instance": "only"' in record


def test_unlisted_adds_are_retried_then_failed_as_not_added(tmp_path: Path) -> None:
    dispatcher, inbox, config = setup(tmp_path, {"only": FakeClient(lose=True)})
    drop(inbox, config, "lost.magnet", link())
    for _ in range(MAX_ATTEMPTS):
        run(dispatcher, inbox)
        CLOCK.advance(PAST_BACKOFF)
    record = (config.folders.failed / "lost.magnet.error.json").read_text()
    assert '"not_added"' in record


def test_an_unexpected_error_becomes_internal_error_after_bounded_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dispatcher, inbox, config = setup(tmp_path, {"only": FakeClient()})

    def explode(name: str, data: bytes) -> Item:
        raise ZeroDivisionError("parser bug")

    monkeypatch.setattr(items, "parse_item", explode)
    drop(inbox, config, "boom.magnet", link())
    with capture_logs() as events:
        for _ in range(MAX_ATTEMPTS):
            run(dispatcher, inbox)
            CLOCK.advance(PAST_BACKOFF)
    assert '"internal_error"' in (config.folders.failed / "boom.magnet.error.json").read_text()
    # each event of the internal_error path carries the exception, so its traceback is logged
    assert [e["event"] for e in events] == ["file_retry"] * (MAX_ATTEMPTS - 1) + ["file_failed"]
    for event in events:
        assert event["reason"] == "internal_error" and event["detail"] == "ZeroDivisionError('parser bug')"
        assert isinstance(event["exc_info"], ZeroDivisionError)
        assert event["exc_info"].__traceback__ is not None


def test_unreadable_files_are_retried_then_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dispatcher, inbox, config = setup(tmp_path, {"only": FakeClient()})
    drop(inbox, config, "locked.magnet", link())

    def denied(*args: object, **kwargs: object) -> bytes:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("magnetd.delivery.dispatch.read", denied)
    for attempt in range(1, 6):
        run(dispatcher, inbox)
        CLOCK.advance(PAST_BACKOFF)
        failed = (config.folders.failed / "locked.magnet.error.json").exists()
        assert failed == (attempt == 5)
    assert '"unreadable"' in (config.folders.failed / "locked.magnet.error.json").read_text()


def test_a_partial_queue_file_is_rewritten_from_its_bytes(tmp_path: Path) -> None:
    client = FakeClient()
    dispatcher, inbox, config = setup(tmp_path, {"only": client})
    good = link()
    drop(inbox, config, "q.json", json.dumps({"magnets": [good, "magnet:?xt=urn:btih:nothex"]}))
    assert run(dispatcher, inbox)
    assert json.loads((config.folders.sent / "q.json").read_text()) == {"magnets": [good]}
    assert json.loads((config.folders.failed / "q.json").read_text()) == {
        "magnets": ["magnet:?xt=urn:btih:nothex"]
    }
