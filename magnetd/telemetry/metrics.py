"""Prometheus metrics: one registry per daemon, two histograms, and a collector over a snapshot.

The daemon fills a :class:`MetricsSnapshot` (plain counts and states it already
keeps in memory); :class:`SnapshotCollector` turns it into metric families on
every scrape, so nothing is kept twice and ``collect()`` never does I/O.
Durations are observed as they happen through :meth:`Metrics.observe_send` and
:meth:`Metrics.observe_probe`.

Labels come only from config names (instances, gates, notification targets)
and fixed enums, never from file names or URLs, so the number of series stays
bounded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import prometheus_client
from prometheus_client import CollectorRegistry, Histogram, Info
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from magnetd import __version__
from magnetd.model import FileOutcome, InstanceStatus, MagnetOutcome

SEND_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Seconds for the add + verify of one batch: tens of milliseconds on a LAN, up to a minute when slow."""
PROBE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Seconds for one probe (an instance's ``app/webapiVersion``, a gate's ping)."""


@dataclass(frozen=True)
class MetricsSnapshot:
    """What the daemon knows now, as the metrics report it.

    Counts are totals since the daemon started (Prometheus counters: ``rate()``
    copes with restarts). ``inbox_oldest_seconds`` is the age of the oldest
    waiting file, 0 when the inbox is empty. ``instances`` maps each configured
    instance name to its status (an :class:`~magnetd.model.InstanceStatus` value
    or ``HTTP_<code>``); ``gates`` maps each VPN gate name to whether it is up;
    ``notifications`` maps (target name, result) to a count.
    """

    files: Mapping[str, int] = field(default_factory=dict)  # FileOutcome -> count
    magnets: Mapping[str, int] = field(default_factory=dict)  # MagnetOutcome -> count
    inbox_files: int = 0
    inbox_oldest_seconds: float = 0.0
    instances: Mapping[str, str] = field(default_factory=dict)
    gates: Mapping[str, bool] = field(default_factory=dict)
    notifications: Mapping[tuple[str, str], int] = field(default_factory=dict)


KNOWN_STATUSES: tuple[str, ...] = tuple(status.value for status in InstanceStatus)
"""The statuses every instance has a ``magnetd_instance_status`` series for (0 or 1)."""


def _counter(name: str, doc: str, label: str, counts: Mapping[str, int], known: Iterable[str]) -> Metric:
    family = CounterMetricFamily(name, doc, labels=[label])
    for value in dict.fromkeys([*map(str, known), *map(str, counts)]):
        family.add_metric([value], float(counts.get(value, 0)))
    return family


def _statuses(snapshot: MetricsSnapshot) -> Iterator[Metric]:
    up = GaugeMetricFamily("magnetd_instance_up", "1 while the instance is OK.", labels=["instance"])
    status = GaugeMetricFamily(
        "magnetd_instance_status",
        "1 for the instance's current status, 0 for the others.",
        labels=["instance", "status"],
    )
    for name, current in snapshot.instances.items():
        up.add_metric([name], 1.0 if current == InstanceStatus.OK else 0.0)
        for known in dict.fromkeys([*KNOWN_STATUSES, str(current)]):
            status.add_metric([name, known], 1.0 if known == current else 0.0)
    yield up
    yield status


class SnapshotCollector:
    """A collector that reads ``source()`` on every scrape and yields the snapshot's families."""

    def __init__(self, source: Callable[[], MetricsSnapshot]) -> None:
        self._source = source

    def describe(self) -> list[Metric]:
        return []  # names are not checked for clashes; collect() must not run at registration

    def collect(self) -> Iterator[Metric]:
        snap = self._source()
        yield _counter(
            "magnetd_files_total", "Files settled, by outcome.", "outcome", snap.files, FileOutcome
        )
        yield _counter(
            "magnetd_magnets_total", "Magnets settled, by outcome.", "outcome", snap.magnets, MagnetOutcome
        )
        yield GaugeMetricFamily("magnetd_inbox_files", "Files waiting in the inbox.", value=snap.inbox_files)
        yield GaugeMetricFamily(
            "magnetd_inbox_oldest_seconds",
            "Age of the oldest waiting file in seconds (0 when the inbox is empty).",
            value=snap.inbox_oldest_seconds,
        )
        yield from _statuses(snap)
        gates = GaugeMetricFamily("magnetd_vpn_up", "1 while the VPN gate answers.", labels=["gate"])
        for gate, is_up in snap.gates.items():
            gates.add_metric([gate], 1.0 if is_up else 0.0)
        yield gates
        sent = CounterMetricFamily(
            "magnetd_notifications_total", "Notifications, by target and result.", labels=["target", "result"]
        )
        for (target, result), count in snap.notifications.items():
            sent.add_metric([target, result], float(count))
        yield sent


class Metrics:
    """The daemon's registry: histograms it observes, build info, and the snapshot collector."""

    def __init__(
        self,
        source: Callable[[], MetricsSnapshot],
        probe_targets: Iterable[str] = (),
        version: str = __version__,
    ) -> None:
        prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]  # process-wide
        self.registry = CollectorRegistry()
        self._send = Histogram(
            "magnetd_send_seconds",
            "Seconds to add and verify one batch.",
            buckets=SEND_BUCKETS,
            registry=self.registry,
        )
        self._probe = Histogram(
            "magnetd_probe_seconds",
            "Seconds one probe took, by target (instance or VPN gate).",
            labelnames=["target"],
            buckets=PROBE_BUCKETS,
            registry=self.registry,
        )
        for target in probe_targets:
            self._probe.labels(target=target)  # present (at 0) from the first scrape
        Info("magnetd_build", "The running magnetd.", registry=self.registry).info({"version": version})
        self.registry.register(SnapshotCollector(source))

    def observe_send(self, seconds: float) -> None:
        """Record how long one batch's add + verify took."""
        self._send.observe(seconds)

    def observe_probe(self, target: str, seconds: float) -> None:
        """Record how long one probe of ``target`` (a config name) took."""
        self._probe.labels(target=target).observe(seconds)

    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """The scrape body and its content type, in the format the ``Accept`` header asks for."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type
