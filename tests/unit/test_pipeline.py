"""The pipeline: files arriving during a pass join its batches; flights land when done or past the cap."""

from __future__ import annotations

import dataclasses
import gc
import threading
from pathlib import Path
from typing import Any, cast

import pytest

from magnetd.delivery.courier import Courier
from magnetd.delivery.dispatch import Dispatcher, Flight, Routed
from magnetd.delivery.settler import Job
from magnetd.intake.inbox import Inbox, Waiting
from magnetd.service import pipeline
from magnetd.service.hold import Hold
from magnetd.service.parts import Parts
from magnetd.service.pipeline import Pipeline
from tests.fakes import FakeClient
from tests.unit.test_dispatch import drop, link, setup


class Recorder:
    """Stands in for the parts a pipeline uses, and notes each hand-over and landing."""

    def __init__(self, dispatcher: Dispatcher, batch_size: int) -> None:
        self.dispatcher = dispatcher
        self.config = dataclasses.replace(dispatcher.config, batch_size=batch_size)
        dispatcher.config = self.config
        self.spool = dispatcher.spool
        self.settler = dispatcher.settler
        self.steps: list[str] = []
        route, land = dispatcher.route, dispatcher.land

        def routed(jobs: list[Job]) -> Routed:
            self.steps.append(f"route {len(jobs)}")
            return route(jobs)

        def landed(flight: Flight) -> bool:
            self.steps.append("land")
            return land(flight)

        dispatcher.route = routed  # type: ignore[method-assign,assignment]
        dispatcher.land = landed  # type: ignore[method-assign,assignment]


def make(
    tmp_path: Path, client: FakeClient, batch_size: int, courier: Courier | None = None
) -> tuple[Recorder, Inbox]:
    dispatcher, inbox, _ = setup(tmp_path, {"only": client}, courier)
    return Recorder(dispatcher, batch_size), inbox


def start(parts: Recorder, inbox: Inbox, arrivals: Any = lambda wait: [], ready: Any = lambda: None) -> None:
    hold = Hold(inbox, cast(Any, None), cast(Any, None))
    Pipeline(
        cast(Parts, parts), inbox, hold, lambda: False, lambda: None, lambda: None, arrivals, ready=ready
    ).run()


def test_files_arriving_during_a_pass_fill_its_batches(tmp_path: Path) -> None:
    client = FakeClient()
    parts, inbox = make(tmp_path, client, batch_size=10)
    for n in range(3):
        drop(inbox, parts.config, f"first{n}.magnet", link())
    calls = 0

    def arrivals(wait: float) -> list[Waiting]:
        nonlocal calls
        calls += 1
        if calls > 1:
            return []
        drop_names = [f"later{n}.magnet" for n in range(7)]
        for name in drop_names:
            drop(inbox, parts.config, name, link())
        return [w for w in inbox.due() if w.path.name in drop_names]

    start(parts, inbox, arrivals)
    assert [len(uris) for uris, _ in client.adds] == [10]  # one whole batch, not 3 and then 7
    assert parts.steps == ["route 10", "land"]
    assert len(list(parts.config.folders.sent.iterdir())) == 10 and len(inbox) == 0


def test_with_nothing_more_arriving_a_small_batch_goes_at_once(tmp_path: Path) -> None:
    client = FakeClient()
    courier = Courier()
    parts, inbox = make(tmp_path, client, batch_size=1000, courier=courier)
    drop(inbox, parts.config, "one.magnet", link())
    told = threading.Event()  # the verdict ends the pass's wait for arrivals at once
    waits: list[float] = []

    def arrivals(wait: float) -> list[Waiting]:
        waits.append(wait)
        if wait:
            assert told.wait(wait * 50), "the verdict was never told"
        return []

    try:
        start(parts, inbox, arrivals, ready=told.set)
    finally:
        courier.close()
    assert [len(uris) for uris, _ in client.adds] == [1]
    assert parts.steps == ["route 1", "land"]
    assert waits[0] == 0.0  # nothing waited for before the batch of one went


def test_past_the_cap_the_oldest_flight_lands_before_another_is_handed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "IN_FLIGHT_BATCHES", 1)
    client = FakeClient()
    client.gate = threading.Event()  # nothing is verified until the test opens it
    courier = Courier()
    parts, inbox = make(tmp_path, client, batch_size=1, courier=courier)
    for n in range(3):
        drop(inbox, parts.config, f"f{n}.magnet", link())
    opener = threading.Timer(0.3, client.gate.set)
    opener.start()
    try:
        start(parts, inbox)
    finally:
        opener.cancel()
        courier.close()
    assert parts.steps[:3] == ["route 1", "route 1", "land"]  # the second went past the cap of 1
    in_flight = [s.count("route") - s.count("land") for s in _prefixes(parts.steps)]
    assert max(in_flight) == 2 and in_flight[-1] == 0
    assert len(list(parts.config.folders.sent.iterdir())) == 3


def test_a_file_handed_over_is_not_loaded_again_in_the_same_pass(tmp_path: Path) -> None:
    client = FakeClient()
    parts, inbox = make(tmp_path, client, batch_size=1000)
    drop(inbox, parts.config, "once.magnet", link())
    again = list(inbox.due())  # the watcher reports the same file twice during the pass
    calls = 0

    def arrivals(wait: float) -> list[Waiting]:
        nonlocal calls
        calls += 1
        return again if calls == 1 else []

    start(parts, inbox, arrivals)
    assert [len(uris) for uris, _ in client.adds] == [1]


def _prefixes(steps: list[str]) -> list[str]:
    return [" ".join(steps[: n + 1]) for n in range(len(steps))]


def test_a_file_arriving_while_a_flight_waits_for_its_verdict_is_sent_before_that_lands(
    tmp_path: Path,
) -> None:
    client = FakeClient()
    gate = client.gate = threading.Event()  # the first flight has no verdict until the test opens it
    courier = Courier()
    parts, inbox = make(tmp_path, client, batch_size=1000, courier=courier)
    drop(inbox, parts.config, "first.magnet", link())
    waits: list[float] = []

    def arrivals(wait: float) -> list[Waiting]:
        waits.append(wait)
        if len(waits) == 2:  # asked while the first flight is out: the second file comes
            drop(inbox, parts.config, "second.magnet", link())
            return [w for w in inbox.due() if w.path.name == "second.magnet"]
        if len(waits) == 4:
            gate.set()
        return []

    try:
        start(parts, inbox, arrivals)
    finally:
        gate.set()
        courier.close()
    assert parts.steps == ["route 1", "route 1", "land", "land"]
    assert waits[1] > 0  # it waited for files, not for the verdict
    assert len(list(parts.config.folders.sent.iterdir())) == 2


def test_a_pass_sends_with_automatic_collection_off_and_turns_it_on_again(tmp_path: Path) -> None:
    client = FakeClient()
    parts, inbox = make(tmp_path, client, batch_size=10)
    drop(inbox, parts.config, "one.magnet", link())
    seen: list[bool] = []
    route = parts.dispatcher.route

    def routed(jobs: list[Job]) -> Routed:
        seen.append(gc.isenabled())
        return route(jobs)

    parts.dispatcher.route = routed  # type: ignore[method-assign,assignment]
    assert gc.isenabled()
    start(parts, inbox)
    assert seen == [False]
    assert gc.isenabled()


def test_a_pass_leaves_collection_off_if_it_was_off() -> None:
    gc.disable()
    try:
        with pipeline.collection_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_long_pass_collects_the_young_generations_every_so_many_landings(tmp_path: Path) -> None:
    client = FakeClient()
    parts, inbox = make(tmp_path, client, batch_size=1)
    for n in range(pipeline.YOUNG_EVERY * 2 + 1):
        drop(inbox, parts.config, f"f{n}.magnet", link())
    collections: list[int] = []

    def note(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    gc.callbacks.append(note)
    try:
        start(parts, inbox)
    finally:
        gc.callbacks.remove(note)
    assert collections == [1, 1]  # none automatic, one per YOUNG_EVERY landings


def test_files_still_to_read_are_handed_over_before_done_flights_land(tmp_path: Path) -> None:
    client = FakeClient()
    parts, inbox = make(tmp_path, client, batch_size=2)
    for n in range(5):
        drop(inbox, parts.config, f"f{n}.magnet", link())
    start(parts, inbox)  # the inline courier: every verdict is there at once
    assert parts.steps == ["route 2", "route 2", "route 1", "land", "land", "land"]
    assert len(list(parts.config.folders.sent.glob("*.magnet"))) == 5
