"""The metrics, scraped from the real endpoint and parsed back with prometheus_client's parser."""

from __future__ import annotations

import requests
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from magnetd import __version__
from magnetd.model import FileOutcome, InstanceStatus, MagnetOutcome
from magnetd.telemetry.metrics import Metrics, MetricsSnapshot
from tests.fakes import FakeBackend
from tests.webparts import TOKEN, base_url, serving

AUTH = {"Authorization": f"Bearer {TOKEN}"}

SNAPSHOT = MetricsSnapshot(
    files={FileOutcome.SENT: 3, FileOutcome.FAILED: 1},
    magnets={MagnetOutcome.ADDED: 5, MagnetOutcome.ALREADY_PRESENT: 2},
    inbox_files=2,
    inbox_oldest_seconds=120.5,
    instances={"primary": InstanceStatus.OK, "backup": InstanceStatus.http(404)},
    gates={"wg0": False},
    notifications={("ntfy", "ok"): 2, ("ntfy", "failed"): 1},
)


def scrape(url: str) -> dict[str, Metric]:
    answer = requests.get(f"{url}/metrics", headers=AUTH, timeout=5)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {family.name: family for family in text_string_to_metric_families(answer.text)}


def values(family: Metric, suffix: str = "") -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value for s in family.samples if s.name == family.name + suffix
    }


def test_the_snapshot_and_observations_come_back_as_scraped() -> None:
    backend = FakeBackend()
    backend.metrics = SNAPSHOT
    metrics = Metrics(backend.snapshot, probe_targets=["primary", "backup"])
    metrics.observe_send(0.25)
    metrics.observe_send(0.5)
    metrics.observe_probe("primary", 0.02)
    with serving(backend, metrics=metrics) as server:
        families = scrape(base_url(server))

    files = families["magnetd_files"]
    assert files.type == "counter"
    assert values(files, "_total") == {
        (("outcome", "sent"),): 3,
        (("outcome", "failed"),): 1,
        (("outcome", "partial"),): 0,
    }
    assert values(families["magnetd_magnets"], "_total") == {
        (("outcome", "added"),): 5,
        (("outcome", "already_present"),): 2,
        (("outcome", "rejected"),): 0,
    }
    assert values(families["magnetd_inbox_files"]) == {(): 2}
    assert values(families["magnetd_inbox_oldest_seconds"]) == {(): 120.5}
    assert values(families["magnetd_instance_up"]) == {
        (("instance", "primary"),): 1,
        (("instance", "backup"),): 0,
    }
    status = values(families["magnetd_instance_status"])
    assert status[(("instance", "backup"), ("status", "HTTP_404"))] == 1
    assert status[(("instance", "primary"), ("status", "OK"))] == 1
    assert sum(v for k, v in status.items() if k[0] == ("instance", "backup")) == 1
    assert {k[1][1] for k in status if k[0] == ("instance", "primary")} == {s.value for s in InstanceStatus}
    assert {k[1][1] for k in status if k[0] == ("instance", "backup")} == {*InstanceStatus, "HTTP_404"}
    assert values(families["magnetd_vpn_up"]) == {(("gate", "wg0"),): 0}
    assert values(families["magnetd_notifications"], "_total") == {
        (("result", "ok"), ("target", "ntfy")): 2,
        (("result", "failed"), ("target", "ntfy")): 1,
    }

    send = families["magnetd_send_seconds"]
    assert send.type == "histogram"
    assert values(send, "_count") == {(): 2} and values(send, "_sum") == {(): 0.75}
    assert values(send, "_bucket")[(("le", "0.25"),)] == 1
    probe = families["magnetd_probe_seconds"]
    assert values(probe, "_count") == {(("target", "primary"),): 1, (("target", "backup"),): 0}
    assert values(families["magnetd_build_info"]) == {(("version", __version__),): 1}

    every = [s.name for f in families.values() for s in f.samples]
    assert not [name for name in every if name.endswith("_created")]


def test_each_scrape_reads_the_snapshot_afresh() -> None:
    backend = FakeBackend()
    backend.metrics = SNAPSHOT
    with serving(backend) as server:
        url = base_url(server)
        assert values(scrape(url)["magnetd_instance_up"])[(("instance", "primary"),)] == 1
        backend.set_instance("primary", InstanceStatus.VPN_DOWN)
        families = scrape(url)
    assert values(families["magnetd_instance_up"])[(("instance", "primary"),)] == 0
    status = values(families["magnetd_instance_status"])
    assert status[(("instance", "primary"), ("status", "VPN_DOWN"))] == 1
    assert status[(("instance", "primary"), ("status", "OK"))] == 0


def test_daemons_in_one_process_keep_separate_registries() -> None:
    first = Metrics(lambda: MetricsSnapshot(inbox_files=1))
    second = Metrics(lambda: MetricsSnapshot(inbox_files=7))
    first.observe_send(1.0)
    texts = [m.exposition()[0].decode() for m in (first, second)]
    assert "magnetd_inbox_files 1.0" in texts[0] and "magnetd_inbox_files 7.0" in texts[1]
    assert "magnetd_send_seconds_count 1.0" in texts[0] and "magnetd_send_seconds_count 0.0" in texts[1]


def test_openmetrics_is_served_when_asked_for() -> None:
    metrics = Metrics(lambda: SNAPSHOT)
    body, content_type = metrics.exposition("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n") and b"_created" not in body
