"""The courier: a batch's adds go out before earlier batches are verified, off the caller's thread,
and errors reach the caller (and every batch waiting on the same instance)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future

import pytest

from magnetd.delivery.courier import CHECK_PER_CALL, Courier, Exchange, Verdict, push
from magnetd.delivery.qbittorrent import AddAnswer, InstanceError
from magnetd.intake.magnet import parse_link
from magnetd.model import AddOptions, Entry, InstanceStatus
from tests.fakes import FakeClient


def entry_for(infohash: str) -> Entry:
    magnet = parse_link(infohash)
    return Entry(line=1, torrent_id=magnet.torrent_id, text=infohash, magnet=magnet)


def exchange(client: FakeClient, *hashes: str, **hooks: object) -> Exchange:
    pairs = [(entry_for(h), AddOptions()) for h in hashes]
    return Exchange(client, "local", pairs, 10, **hooks)  # type: ignore[arg-type]


def until(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_every_batch_handed_over_is_added_before_any_is_verified() -> None:
    client = FakeClient()
    client.gate = threading.Event()  # holds the first batch until all five are handed over
    courier = Courier()
    hashes = [f"{n:x}" * 40 for n in range(1, 6)]
    try:
        futures = [courier.carry(exchange(client, hashes[0]))]
        until(lambda: courier.queued() == 0)  # the first is being sent (held at the gate) alone
        futures += [courier.carry(exchange(client, h)) for h in hashes[1:]]
        client.gate.set()
        verdicts = [f.result(timeout=10) for f in futures]
    finally:
        courier.close()
    assert [v.present for v in verdicts] == [{h} for h in hashes]
    adds = [i for i, (method, _) in enumerate(client.sequence) if method == "add_magnets"]
    assert [client.sequence[i][1] for i in adds] == [{h} for h in hashes]  # in the order handed over
    presents = [(i, ids) for i, (method, ids) in enumerate(client.sequence) if method == "present"]
    # the first batch's pre-check and add, one pre-check for the four queued behind it, their
    # adds, then the looks
    assert [ids for _, ids in presents[:2]] == [{hashes[0]}, set(hashes[1:])]
    assert presents[0][0] < adds[0] < presents[1][0] < adds[1] and max(adds) < presents[2][0]
    assert client.threads == {"magnetd-courier"}


def test_a_magnet_in_two_batches_checked_together_is_verified_and_counted_as_already_there() -> None:
    client = FakeClient()
    client.gate = threading.Event()
    courier = Courier()
    first, shared, last, old = "aa" * 20, "bb" * 20, "cc" * 20, "dd" * 20
    client.have.add(old)
    try:
        futures = [courier.carry(exchange(client, first))]
        until(lambda: courier.queued() == 0)
        futures += [
            courier.carry(exchange(client, shared, old)),
            courier.carry(exchange(client, shared, last)),  # the same magnet, another file
        ]
        client.gate.set()
        verdicts = [f.result(timeout=10) for f in futures]
    finally:
        courier.close()
    assert [v.present for v in verdicts] == [{first}, {shared, old}, {shared, last}]
    assert [v.already for v in verdicts] == [set(), {old}, {shared}]
    second_check = [ids for method, ids in client.sequence if method == "present"][1]
    assert second_check == {shared, old, last}  # one look before the adds for both queued batches
    assert client.per_call[1] == CHECK_PER_CALL > client.per_call[-1]  # looks after adds: in slices


def test_a_batch_handed_over_later_is_added_while_an_earlier_one_waits_for_its_torrents() -> None:
    client = FakeClient(lose=True)  # accepted, never listed: the first batch keeps looking ~1.6 s
    courier = Courier()
    try:
        first = courier.carry(exchange(client, "aa" * 20))
        until(lambda: client.calls["present"] >= 3)  # pre-check and two looks: it is waiting
        client.lose = False
        second = courier.carry(exchange(client, "bb" * 20))
        assert second.result(timeout=10).present == {"bb" * 20}
        assert not first.done()  # sent after the first, verified before it: looks wait their turn
        verdict = first.result(timeout=10)
    finally:
        courier.close()
    assert verdict.present == set()  # never listed: the file is tried again later
    assert verdict.refused == {}


def test_an_instance_error_ends_every_batch_waiting_on_that_instance() -> None:
    client = FakeClient(lose=True)
    told: list[str] = []
    courier = Courier()
    try:
        futures = [
            courier.carry(exchange(client, h, failed=lambda exc: told.append(exc.status)))
            for h in ("aa" * 20, "bb" * 20)
        ]
        until(lambda: client.calls["add_magnets"] == 2)
        before = client.calls["present"]
        client.fail = "UNREACHABLE"
        for future in futures:
            with pytest.raises(InstanceError, match="connection dropped"):
                future.result(timeout=10)
    finally:
        courier.close()
    assert client.calls["present"] == before + 1  # one failed look, not one per batch
    assert told == ["UNREACHABLE"]


def test_a_batch_its_guard_stops_fails_alone_and_others_go_on() -> None:
    client = FakeClient()

    def guard() -> None:
        raise InstanceError("SKIPPED", "the instance went down meanwhile")

    courier = Courier()
    try:
        stopped = courier.carry(exchange(client, "aa" * 20, guard=guard))
        sent = courier.carry(exchange(client, "bb" * 20))
        with pytest.raises(InstanceError, match="went down meanwhile"):
            stopped.result(timeout=10)
        assert sent.result(timeout=10).present == {"bb" * 20}
    finally:
        courier.close()
    assert [ids for method, ids in client.sequence if method == "add_magnets"] == [{"bb" * 20}]


@pytest.mark.parametrize("threaded", [True, False])
def test_an_unexpected_error_reaches_the_caller_and_the_courier_carries_on(threaded: bool) -> None:
    client = FakeClient()
    courier = Courier(threaded=threaded)

    def boom() -> None:
        raise ValueError("boom")

    try:
        with pytest.raises(ValueError, match="boom"):
            courier.carry(exchange(client, "aa" * 20, guard=boom)).result(timeout=10)
        assert courier.carry(exchange(client, "bb" * 20)).result(timeout=10).present == {"bb" * 20}
    finally:
        courier.close()


def test_close_finishes_what_was_handed_over() -> None:
    client = FakeClient()
    courier = Courier()
    futures: list[Future[Verdict]] = [courier.carry(exchange(client, f"{n:x}" * 40)) for n in range(1, 10)]
    courier.close()
    assert all(f.done() and not f.exception() for f in futures)


def test_what_the_instance_already_lists_is_not_sent_again_and_told_apart() -> None:
    client = FakeClient()
    old, new = "aa" * 20, "bb" * 20
    client.have.add(old)
    pairs = [(entry_for(old), AddOptions()), (entry_for(new), AddOptions())]
    verdict = push(client, "local", pairs, batch_size=10)
    assert verdict.already == {old} and verdict.present == {old, new}
    assert [uris for uris, _ in client.adds] == [[f"magnet:?xt=urn:btih:{new}"]]


def test_a_closed_courier_takes_nothing_more() -> None:
    courier = Courier()
    courier.close()
    with pytest.raises(RuntimeError, match="closed"):
        courier.carry(exchange(FakeClient(), "aa" * 20))


class FailsOn(FakeClient):
    """Times out on the add of one magnet; answers everything else."""

    def __init__(self, infohash: str) -> None:
        super().__init__()
        self.infohash = infohash

    def add_magnets(self, uris: Sequence[str], options: AddOptions) -> AddAnswer:
        if any(self.infohash in uri for uri in uris):
            self.sequence.append(("add_magnets", frozenset([self.infohash])))
            raise InstanceError(InstanceStatus.TIMEOUT, "no answer")
        return super().add_magnets(uris, options)


def test_batches_checked_along_one_that_failed_on_its_instance_check_again() -> None:
    first, failing, later = "aa" * 20, "bb" * 20, "cc" * 20
    client = FailsOn(failing)
    client.gate = threading.Event()
    courier = Courier()
    try:
        futures = [courier.carry(exchange(client, first))]
        until(lambda: courier.queued() == 0)
        futures += [courier.carry(exchange(client, failing)), courier.carry(exchange(client, later))]
        client.gate.set()
        with pytest.raises(InstanceError):
            futures[1].result(timeout=10)
        verdict = futures[2].result(timeout=10)
    finally:
        courier.close()
    steps = [(method, set(ids)) for method, ids in client.sequence]
    added_later = steps.index(("add_magnets", {later}))
    checks = [ids for method, ids in steps[:added_later] if method == "present"]
    assert checks == [{first}, {failing, later}, {later}]  # asked again after the error, before the add
    assert verdict.present == {later} and not verdict.already
