"""The ledger re-adds what an instance lost in an outage, and only that."""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs

from magnetd.delivery.dispatch import Dispatcher
from magnetd.delivery.ledger import WINDOW, Ledger
from magnetd.intake.inbox import Inbox
from magnetd.model import InstanceStatus
from tests.fakes import FakeClient
from tests.unit.test_dispatch import CLOCK, drop, link, run, setup


def with_ledger(tmp_path: Path) -> tuple[FakeClient, Ledger, Dispatcher, Inbox]:
    client = FakeClient()
    dispatcher, inbox, config = setup(tmp_path, {"only": client})
    ledger = Ledger(dispatcher.clients, dispatcher.health, 1000, clock=CLOCK, sleep=lambda _: None)
    dispatcher.ledger = ledger
    drop(inbox, config, "a.magnet", link())
    drop(inbox, config, "b.magnet", link())
    assert run(dispatcher, inbox)
    return client, ledger, dispatcher, inbox


def test_torrents_lost_in_an_outage_are_added_again(tmp_path: Path) -> None:
    client, ledger, dispatcher, _ = with_ledger(tmp_path)
    given = set(client.have)
    assert len(given) == 2
    lost = sorted(given)[0]
    client.have.discard(lost)  # qBittorrent listed it, then exited without saving it
    dispatcher.health.set_instance("only", InstanceStatus.UNREACHABLE, "restarting")
    ledger.check()
    assert client.have == given - {lost}, "nothing is contacted while the instance is out"
    dispatcher.health.set_instance("only", InstanceStatus.OK)
    with capture_logs() as events:
        ledger.check()
    assert client.have == given
    readded = [e for e in events if e["event"] == "magnets_readded"]
    assert readded and readded[0]["infohashes"] == [lost]
    adds = len(client.adds)
    ledger.check()  # the outage is settled: no second re-check
    assert len(client.adds) == adds


def test_no_outage_no_recheck_and_old_adds_are_forgotten(tmp_path: Path) -> None:
    client, ledger, dispatcher, _ = with_ledger(tmp_path)
    adds = len(client.adds)
    ledger.check()
    assert len(client.adds) == adds
    CLOCK.advance(WINDOW + 1)
    ledger.check()  # past the window: forgotten
    client.have.clear()
    dispatcher.health.set_instance("only", InstanceStatus.UNREACHABLE, "restarting")
    ledger.check()
    dispatcher.health.set_instance("only", InstanceStatus.OK)
    ledger.check()
    assert len(client.adds) == adds and not client.have


def test_only_batches_given_within_the_window_before_the_outage_are_checked_again(tmp_path: Path) -> None:
    client, ledger, dispatcher, inbox = with_ledger(tmp_path)
    old = set(client.have)
    CLOCK.advance(WINDOW / 2)
    drop(inbox, dispatcher.config, "c.magnet", link())
    assert run(dispatcher, inbox)
    recent = set(client.have) - old
    CLOCK.advance(WINDOW / 2 + 1)  # the first batch is past the window, the second is not
    ledger.check()  # as the daemon's loop does all the time
    client.have.clear()  # everything lost
    dispatcher.health.set_instance("only", InstanceStatus.UNREACHABLE, "restarting")
    ledger.check()
    dispatcher.health.set_instance("only", InstanceStatus.OK)
    ledger.check()
    assert client.have == recent
