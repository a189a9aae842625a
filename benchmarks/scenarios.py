"""The four scenarios: latency, bulk, drain and idle. Each returns its raw figures by key.

Every scenario starts fresh qbittorrent-nox instances (state left by one would
slow the next) and stops everything it started before it returns.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from benchmarks.features import Scraper
from benchmarks.probes import (
    AnswerProbe,
    BenchError,
    FolderWatcher,
    LogWatcher,
    cpu_seconds,
    peak_rss_mb,
)
from benchmarks.rig import Magnet, Rig, daemon_pid, logged_in, magnets, quiet_disk, rename_in, stage
from benchmarks.spy import Spy
from tests.daemon import Daemon
from tests.qbt import Qbt, QbtApi

Figures = dict[str, float]
DROP_TIMEOUT = 60.0  # seconds for one dropped file to show up
FLOOR_REPEATS = 3
API_BATCH = 1000  # magnets per request in the bare-WebAPI reference: magnetd's default batch_size


@dataclass(frozen=True)
class Settings:
    """How much to measure: the full run or ``--quick``."""

    drops: int = 20
    bulk_sizes: tuple[int, ...] = (2000, 10_000, 30_000)
    drain_sizes: tuple[int, ...] = (2000, 10_000, 30_000)
    # Each bulk size is measured this many times, interleaved (magnetd, qBittorrent alone,
    # the watched folder; again); the figures are the medians, peak RSS the highest.
    bulk_takes: int = 3
    idle_seconds: float = 60.0
    # Random pause after the previous drop was done: isolated drops, spread over a whole
    # period of the watched folder's 2 s timer.
    pause: tuple[float, float] = (0.6, 2.6)
    close: tuple[float, float] = (0.05, 0.5)  # magnetd only: a drop soon after the previous one settled
    latency_poll: float = 0.005  # seconds between two log/main polls while timing single drops
    bulk_poll: float = 0.01
    # The watched folder and the bare WebAPI: off in benchmarks.compare, which compares magnetd
    # with itself.
    references: bool = True

    @classmethod
    def quick(cls) -> Settings:
        return cls(drops=5, bulk_sizes=(200, 400), drain_sizes=(200, 400), idle_seconds=10.0, bulk_takes=2)


def bulk_timeout(n: int) -> float:
    """A generous bound for ``n`` files: a minute plus 50 ms per file."""
    return 60.0 + 0.05 * n


def watch_log(stack: ExitStack, server: Qbt, interval: float) -> LogWatcher:
    """A running poller of ``server``'s log, stopped with ``stack``."""
    watcher = LogWatcher(logged_in(server), interval)
    stack.callback(watcher.stop)
    watcher.start()
    return watcher


def watch_folder(stack: ExitStack, folder: Path) -> FolderWatcher:
    watcher = FolderWatcher(folder)
    stack.callback(watcher.stop)
    watcher.start()
    return watcher


def summary(prefix: str, samples: list[float]) -> Figures:
    """Median and 95th percentile (ms) of ``samples`` (seconds)."""
    ms = [s * 1000 for s in samples]
    p95 = statistics.quantiles(ms, n=20, method="inclusive")[18] if len(ms) > 1 else ms[0]
    return {f"{prefix}_median_ms": statistics.median(ms), f"{prefix}_p95_ms": p95}


# -- 1. latency -----------------------------------------------------------------------------


def drop_one(folder: Path, item: Magnet) -> float:
    """Write ``.<name>.tmp`` in ``folder``, rename it to ``<name>``; the rename's monotonic time."""
    temp = folder / f".{item.file_name}.tmp"
    temp.write_text(item.uri + "\n", encoding="ascii")
    started = time.monotonic()
    temp.rename(folder / item.file_name)
    return started


def timed_drops(
    folder: Path,
    log: LogWatcher,
    sent: FolderWatcher | None,
    items: list[Magnet],
    pause: tuple[float, float],
) -> tuple[list[float], list[float]]:
    """Drop ``items`` one at a time, each after a random ``pause`` once the previous one is done.

    Returns (seconds to the log line, seconds to sent/) for all but the first drop.
    """
    added: list[float] = []
    settled: list[float] = []
    for index, item in enumerate(items):
        time.sleep(random.uniform(*pause))
        start = drop_one(folder, item)
        seen = log.seen.wait_name(item.name, DROP_TIMEOUT, f"{item.name} in qBittorrent's log")
        done = sent.seen.wait_name(item.file_name, DROP_TIMEOUT, f"{item.file_name} in sent/") if sent else 0
        if index == 0:
            continue  # warm-up: the first add of a session (login, caches) is not typical
        added.append(seen - start)
        if sent:
            settled.append(done - start)
    return added, settled


def latency(rig: Rig, settings: Settings) -> tuple[Figures, dict[str, list[float]]]:
    """Single drops into magnetd's inbox, then into the watched folder of a second instance."""
    count = settings.drops + 1
    with ExitStack() as stack:
        server = rig.qbt(stack, "latency-magnetd")
        daemon = rig.daemon(stack, server)
        log = watch_log(stack, server, settings.latency_poll)
        sent = watch_folder(stack, daemon.sent)
        added, settled = timed_drops(daemon.inbox, log, sent, magnets("lat-m", count), settings.pause)
        close, _ = timed_drops(daemon.inbox, log, sent, magnets("lat-c", count), settings.close)
    figures = {
        **summary("lat_magnetd", added),
        **summary("lat_settled", settled),
        **summary("lat_close", close),
    }
    samples = {"lat_magnetd_s": added, "lat_settled_s": settled, "lat_close_s": close}
    if settings.references:
        with ExitStack() as stack:
            server, folder = rig.watched_qbt(stack, "latency-watch")
            log = watch_log(stack, server, settings.latency_poll)
            watched, _ = timed_drops(folder, log, None, magnets("lat-w", count), settings.pause)
        figures |= summary("lat_watch", watched)
        samples["lat_watch_s"] = watched
    return figures, samples


# -- 2. bulk --------------------------------------------------------------------------------


def floor_seconds(api: QbtApi, items: list[Magnet]) -> float:
    """The median time of one bare ``torrents/info`` asking for every hash at once."""
    form = {"hashes": "|".join(item.infohash for item in items)}
    times = []
    for _ in range(FLOOR_REPEATS):
        start = time.monotonic()
        listed = api.request("POST", "torrents/info", data=form).json()
        times.append(time.monotonic() - start)
        if len(listed) != len(items):
            raise BenchError(f"qBittorrent lists {len(listed)} of the {len(items)} torrents")
    return statistics.median(times)


def profiled(stack: ExitStack, rig: Rig, pid: int, name: str) -> None:
    """With ``--profile``, sample ``pid`` with py-spy until ``stack`` closes."""
    if rig.profile_dir is not None:
        rig.profile_dir.mkdir(parents=True, exist_ok=True)
        stack.enter_context(Spy(pid, rig.profile_dir / f"profile-{name}.txt"))


def cpu_split(pid: int, before: tuple[float, float]) -> tuple[float, float]:
    """CPU seconds since ``before`` (from :func:`cpu_now`): the whole process, and its main thread alone."""
    total, main = cpu_now(pid)
    return total - before[0], main - before[1]


def cpu_now(pid: int) -> tuple[float, float]:
    """CPU seconds so far of the whole process (ended threads too) and of its main thread."""
    return cpu_seconds(pid), cpu_seconds(pid, pid)


def qbt_cpu(server: Qbt) -> float:
    """CPU seconds the instance's process has used so far (all its threads)."""
    if server.process is None:
        raise BenchError("qbittorrent-nox is not running")
    return cpu_seconds(server.process.pid)


def bulk_magnetd(rig: Rig, n: int, settings: Settings, profile: bool = True) -> Figures:
    """N files renamed into magnetd's inbox at once; until all are in sent/ (and in the log).

    ``profile``: with ``--profile``, sample the daemon if N is the largest size.
    """
    items = magnets(f"b{n}-m", n)
    with ExitStack() as stack:
        server = rig.qbt(stack, f"bulk{n}-magnetd")
        daemon = rig.daemon(stack, server)
        pid = daemon_pid(daemon)
        staging = rig.folder(f"stage-bulk{n}-m")
        stage(staging, items)
        log = watch_log(stack, server, settings.bulk_poll)
        sent = watch_folder(stack, daemon.sent)
        with ExitStack() as spying:
            if profile and n == max(settings.bulk_sizes):
                profiled(spying, rig, pid, f"bulk{n}")
            quiet_disk()
            cpu_before = cpu_now(pid)
            qbt_before = qbt_cpu(server)
            start = time.monotonic()
            rename_in(staging, daemon.inbox, items)
            renamed = time.monotonic() - start
            what = f"all {n} files in magnetd's sent/"
            done = sent.seen.wait_count(n, f"b{n}-m-", bulk_timeout(n), what)
            cpu, main_cpu = cpu_split(pid, cpu_before)
            qbt_cpu_s = qbt_cpu(server) - qbt_before
        logged = log.seen.wait_count(n, f"b{n}-m-", DROP_TIMEOUT, f"all {n} adds in qBittorrent's log")
        floor = floor_seconds(logged_in(server), items)
        rss = peak_rss_mb(pid)
    return {
        f"bulk{n}_magnetd_s": done - start,
        f"bulk{n}_magnetd_per_file_ms": (done - start) / n * 1000,
        f"bulk{n}_magnetd_log_s": logged - start,
        f"bulk{n}_floor_s": floor,
        f"bulk{n}_rename_s": renamed,
        f"bulk{n}_cpu_s": cpu,
        f"bulk{n}_main_cpu_s": main_cpu,
        f"bulk{n}_qbt_cpu_s": qbt_cpu_s,
        f"rss_bulk{n}_mb": rss,
    }


def bulk_watch(rig: Rig, n: int, settings: Settings) -> Figures:
    """N files renamed into the watched folder at once; until all N adds are in the log."""
    items = magnets(f"b{n}-w", n)
    with ExitStack() as stack:
        server, folder = rig.watched_qbt(stack, f"bulk{n}-watch")
        staging = rig.folder(f"stage-bulk{n}-w")
        stage(staging, items)
        log = watch_log(stack, server, settings.bulk_poll)
        quiet_disk()
        start = time.monotonic()
        rename_in(staging, folder, items)
        what = f"all {n} watched-folder adds in qBittorrent's log"
        done = log.seen.wait_count(n, f"b{n}-w-", bulk_timeout(n), what)
    return {f"bulk{n}_watch_s": done - start, f"bulk{n}_watch_per_file_ms": (done - start) / n * 1000}


def bulk_api(rig: Rig, n: int, batch: int = API_BATCH) -> Figures:
    """What qBittorrent needs with no files at all: per ``batch`` magnets, one add, then info.

    The same requests magnetd makes (``torrents/info`` again for any hash not yet
    listed), sent back to back from this process on a fresh instance.
    """
    items = magnets(f"b{n}-a", n)
    with ExitStack() as stack:
        api = logged_in(rig.qbt(stack, f"bulk{n}-api"))
        quiet_disk()
        start = time.monotonic()
        for first in range(0, n, batch):
            chunk = items[first : first + batch]
            api.request("POST", "torrents/add", data={"urls": "\n".join(item.uri for item in chunk)})
            missing = {item.infohash for item in chunk}
            deadline = time.monotonic() + DROP_TIMEOUT
            while missing:
                if time.monotonic() > deadline:
                    raise BenchError(f"qBittorrent never listed {len(missing)} added torrents")
                listed = api.request("POST", "torrents/info", data={"hashes": "|".join(missing)}).json()
                missing -= {torrent["hash"] for torrent in listed}
        return {f"bulk{n}_api_s": time.monotonic() - start}


def bulk(rig: Rig, n: int, settings: Settings) -> tuple[Figures, dict[str, list[float]]]:
    """Bulk N, ``settings.bulk_takes`` times: the combined figures, and every take's (``takes_<key>``).

    Each take measures magnetd, then qBittorrent alone, then the watched folder, so a slow
    spell of the machine falls on all three alike rather than on one of them. With
    ``--profile``, only the first take is sampled.
    """
    takes: list[Figures] = []
    for take in range(settings.bulk_takes):
        figures = bulk_magnetd(rig, n, settings, profile=take == 0)
        if settings.references:
            figures |= {**bulk_api(rig, n), **bulk_watch(rig, n, settings)}
        takes.append(figures)
    return combined(takes), {f"takes_{key}": [take[key] for take in takes] for key in takes[0]}


def combined(takes: list[Figures]) -> Figures:
    """One figure per key of the takes: the median; for peak RSS (``rss_*``), the highest."""
    return {
        key: max(values) if key.startswith("rss_") else statistics.median(values)
        for key in takes[0]
        for values in [[take[key] for take in takes]]
    }


# -- 3. drain -------------------------------------------------------------------------------


def wait_held(daemon: Daemon, n: int, timeout: float) -> None:
    """Until magnetd's status snapshot says all ``n`` files are waiting and held."""
    path = daemon.state / "status.json"
    deadline = time.monotonic() + timeout
    while True:
        try:
            snap = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            snap = {}
        if snap.get("inbox") == n and snap.get("held") == n:
            return
        if time.monotonic() > deadline:
            raise BenchError(f"magnetd did not report {n} files held within {timeout:.0f} s: {snap}")
        time.sleep(0.2)


def drain(rig: Rig, n: int) -> Figures:
    """N files dropped while the only instance is stopped; from its first answer to all in sent/."""
    items = magnets(f"d{n}", n)
    with ExitStack() as stack:
        server = rig.qbt(stack, f"drain{n}")
        server.stop()
        daemon = rig.daemon(stack, server, probe_interval=1)
        staging = rig.folder(f"stage-drain{n}")
        stage(staging, items)
        sent = watch_folder(stack, daemon.sent)
        rename_in(staging, daemon.inbox, items)
        wait_held(daemon, n, bulk_timeout(n))
        held_rss = peak_rss_mb(daemon_pid(daemon))
        quiet_disk()
        probe = AnswerProbe(server.url)
        stack.callback(probe.stop)
        with ExitStack() as spying:
            profiled(spying, rig, daemon_pid(daemon), f"drain{n}")
            probe.start()
            server.start(timeout=60)
            probe.join(10)
            if probe.answered_at is None:
                raise BenchError("qbittorrent-nox started but the answer probe never saw it")
            done = sent.seen.wait_count(n, f"d{n}-", bulk_timeout(n), f"all {n} held files in sent/")
        floor_seconds(logged_in(server), items)  # checks that qBittorrent really lists all n
        rss = peak_rss_mb(daemon_pid(daemon))
    seconds = done - probe.answered_at
    return {
        f"drain{n}_s": seconds,
        f"drain{n}_per_file_ms": seconds / n * 1000,
        f"rss_drain{n}_mb": rss,
        f"rss_held{n}_mb": held_rss,
    }


# -- 4. idle --------------------------------------------------------------------------------


def scraper(rig: Rig, daemon: Daemon, window: float) -> Scraper | None:
    """With ``--http``: a scraper of the daemon's /metrics (with the token), not started yet."""
    if not rig.features.options.http:
        return None
    return Scraper(f"{daemon.endpoint()}/metrics", rig.features.token, window)


def idle(rig: Rig, settings: Settings) -> Figures:
    """CPU time of an idle magnetd (default probe interval) over ``idle_seconds``, % of one core.

    With ``--http``, /metrics is scraped every 15 s during the whole window.
    """
    with ExitStack() as stack:
        server = rig.qbt(stack, "idle")
        daemon = rig.daemon(stack, server)
        pid = daemon_pid(daemon)
        scrapes = scraper(rig, daemon, settings.idle_seconds)
        time.sleep(2.0)  # start-up (imports, the first probe round) is not idling
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        if scrapes is not None:
            stack.callback(scrapes.stop)
            scrapes.start()  # the first scrape at once, then every 15 s
        time.sleep(settings.idle_seconds)
        cpu1, t1 = cpu_seconds(pid), time.monotonic()
        figures = {"idle_cpu_percent": (cpu1 - cpu0) / (t1 - t0) * 100, "rss_idle_mb": peak_rss_mb(pid)}
    return figures | (scrapes.figures() if scrapes else {})
