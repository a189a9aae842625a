"""The courier: exchanges run in order, off the caller's thread, and errors reach the caller."""

from __future__ import annotations

import threading

import pytest

from magnetd.delivery.courier import Courier, push
from magnetd.intake.magnet import parse_link
from magnetd.model import AddOptions, Entry
from tests.fakes import FakeClient


def entry_for(infohash: str) -> Entry:
    magnet = parse_link(infohash)
    return Entry(line=1, torrent_id=magnet.torrent_id, text=infohash, magnet=magnet)


def test_threaded_courier_runs_in_order_on_its_own_thread() -> None:
    courier = Courier()
    seen: list[tuple[int, str]] = []
    try:
        futures = [
            courier.submit(lambda n: seen.append((n, threading.current_thread().name)), n) for n in range(50)
        ]
        for future in futures:
            future.result(timeout=10)
    finally:
        courier.close()
    assert [n for n, _ in seen] == list(range(50))
    assert {name for _, name in seen} == {"magnetd-courier_0"}


@pytest.mark.parametrize("threaded", [True, False])
def test_an_error_in_an_exchange_is_raised_where_its_result_is_asked_for(threaded: bool) -> None:
    courier = Courier(threaded=threaded)

    def fail() -> None:
        raise ValueError("boom")

    try:
        future = courier.submit(fail)
        with pytest.raises(ValueError, match="boom"):
            future.result(timeout=10)
        assert courier.submit(lambda: 7).result(timeout=10) == 7  # the courier carries on
    finally:
        courier.close()


def test_what_the_instance_already_lists_is_not_sent_again_and_told_apart() -> None:
    client = FakeClient()
    old, new = "aa" * 20, "bb" * 20
    client.have.add(old)
    pairs = [(entry_for(old), AddOptions()), (entry_for(new), AddOptions())]
    verdict = push(client, "local", pairs, batch_size=10)
    assert verdict.already == {old} and verdict.present == {old, new}
    assert [uris for uris, _ in client.adds] == [[f"magnet:?xt=urn:btih:{new}"]]
