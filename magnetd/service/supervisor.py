"""The main loop: one thread owns the inbox, every send and every file move.

Other threads only report: the watcher queues paths, the prober updates
:class:`Health` and wakes the loop, signal handlers set a flag and wake it.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magnetd import logs
from magnetd.clock import now_iso
from magnetd.config import Config, ConfigError, load
from magnetd.delivery.dispatch import Counters
from magnetd.intake.inbox import Inbox, Waiting
from magnetd.intake.watcher import Watcher, scan
from magnetd.model import Arrival, Seen
from magnetd.records import status
from magnetd.records.spool import count_files, ensure_folders, prune
from magnetd.service.filewatch import ConfigWatch
from magnetd.service.hold import Hold
from magnetd.service.parts import Parts
from magnetd.service.pipeline import Pipeline
from magnetd.service.report import snapshot, status_line
from magnetd.service.systemd import Notifier

if TYPE_CHECKING:
    from magnetd.service.portal import Portal
from magnetd.telemetry.notices import Notices

WAKE = object()
READY = object()  # a flight's verdict came: a pass waiting for arrivals goes on at once
IDLE_TICK = 5.0  # the loop wakes at least this often to check its threads (a dead one is restarted)
AFTER_PASS = 1.0  # seconds within which a pass's outcome reaches the status snapshot (one write a
# second at most while files trickle in: a snapshot costs ~0.3 ms, a single drop's pass not much more)
PRUNE_EVERY = 3600.0  # seconds between retention passes over sent/: retention is in days, a walk costs

log = logs.get(__name__)


class Supervisor:
    """Runs magnetd until :meth:`request_stop`."""

    def __init__(self, config: Config, notifier: Notifier | None = None) -> None:
        self.config = config
        self.notifier = notifier or Notifier()
        self.events: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._woken = False  # a wake-up was taken while a pass took arrivals
        self.counters = Counters()
        self.inbox = Inbox(config.folders.inbox)
        self.watcher = Watcher(config.folders.inbox, self.events, config.watch.polling)
        self.notices = Notices(config.notify)
        self.latest: dict[str, Any] = {}  # the last status snapshot, for the status endpoint
        self.heartbeat = time.monotonic()  # when the loop last went round, for /healthz
        self.portal = _portal(self, config)
        self.parts = self._parts(config)
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._watch = ConfigWatch(config)  # while an instance waits for a new password
        self._next_rescan = 0.0
        self._next_snapshot = 0.0
        self._snapshot_generation = -1
        self._next_prune = 0.0
        self.started_at = now_iso()  # for the status snapshot
        self.hold = Hold(self.inbox, self.counters, self.notices.announcer)

    def _parts(self, config: Config) -> Parts:
        metrics = self.portal.metrics if self.portal is not None else None
        return Parts(
            config, self.inbox, self.counters, self.notices.announcer, self.wake, self._keepalive, metrics
        )

    # -- called from other threads or signal handlers: set a flag, wake the loop ------------

    def wake(self) -> None:
        self.events.put(WAKE)

    def _keepalive(self) -> None:
        """While the loop waits for a slow instance: it is not hung, tell systemd so."""
        self.notifier.watchdog(time.monotonic())

    def request_stop(self) -> None:
        self._stop.set()
        self.events.put(WAKE)

    def request_reload(self) -> None:
        self._reload.set()
        self.events.put(WAKE)

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> int:
        """Start every part, loop until stopped, stop every part; returns the exit code."""
        self._start()
        try:
            while not self._stop.is_set():
                self._wait_for_events()
                if self._stop.is_set():
                    break
                if self._reload.is_set():
                    self._do_reload()
                elif changed := self._watch.changed(
                    self.config, self.parts.health.needing_config(), time.monotonic()
                ):
                    self._do_reload(trigger="file_changed", changed=changed)
                try:
                    self._keep_parts_alive()
                    self._tick()
                except Exception as exc:
                    log.exception("loop_error", error=repr(exc), action="continuing in 1 s")
                    self._stop.wait(1.0)
        finally:
            self._shutdown()
        return 0

    def _start(self) -> None:
        cfg = self.config
        ensure_folders(cfg.folders)
        for warning in cfg.warnings:
            log.warning("config_warning", detail=warning)
        self._start_watcher()
        self._recount(sent=True)
        self.parts.prober.round()
        self.parts.prober.start()
        self._rescan()
        self.latest = snapshot(self).to_dict()  # for the endpoint until the first tick writes one
        if self.portal is not None:
            self.portal.start()
        log.info(
            "daemon_started",
            config=str(cfg.path),
            inbox=str(cfg.folders.inbox),
            waiting=len(self.inbox),
            polling=self.watcher.polling,
            pid=os.getpid(),
            instances=[i.name for i in cfg.instances],
        )
        self.notifier.ready(status_line(self))

    def _start_watcher(self) -> None:
        try:
            self.watcher.start()
        except OSError as exc:
            log.error(
                "watcher_failed",
                inbox=str(self.config.folders.inbox),
                error=str(exc),
                hint="check the inbox folder exists and is readable; retrying",
            )

    def _wait_for_events(self) -> None:
        """Block until something happens or the next timer is due, then take every event."""
        timeout = max(0.0, min(self._next_deadline() - time.monotonic(), IDLE_TICK))
        if self._woken:  # a wake-up was taken during the last pass: act on it now
            self._woken, timeout = False, 0.0
        try:
            event = self.events.get(timeout=timeout)
        except queue.Empty:
            return
        self._take(event)
        self._arrivals()
        self._woken = False

    def _arrivals(self, wait: float = 0.0) -> list[Waiting]:
        """Take every event queued, waiting up to ``wait`` seconds for one; the files that became due."""
        events: list[Any] = []
        try:
            if wait > 0:
                events.append(self.events.get(timeout=wait))
            for _ in range(100_000):
                events.append(self.events.get_nowait())
        except queue.Empty:
            pass
        self._woken |= any(event is WAKE for event in events)  # a reload, a stop, a health change
        return [waiting for event in events for waiting in self._take(event)]

    def _take(self, event: Any) -> list[Waiting]:
        if not isinstance(event, Seen):
            return []
        if event.how == Arrival.DIR:  # a folder moved in brings files without events
            noted = [self.inbox.note(Seen(path, Arrival.MOVED)) for path in scan(Path(event.path))]
            return [w for w in noted if w is not None]
        if event.how == Arrival.ERROR:
            self._next_rescan = 0.0
            return []
        waiting = self.inbox.note(event)
        return [] if waiting is None else [waiting]

    def _next_deadline(self) -> float:
        deadlines = [self._next_rescan, self._next_snapshot]
        due = self.inbox.next_due()
        if due is not None and not self.hold.active:
            deadlines.append(due)
        watchdog = self.notifier.next_watchdog()
        if watchdog is not None:
            deadlines.append(watchdog)
        if self.parts.health.needing_config():
            deadlines.append(self._watch.next_check)
        for deadline in (self.notices.announcer.next_due(), self._reconnect_deadline()):
            if deadline is not None:
                deadlines.append(deadline)
        return min(deadlines)

    def _reconnect_deadline(self) -> float | None:
        """While files wait for a reconnecting VPN: when the wait ends and they fail over."""
        reconnector = self.parts.reconnector
        return reconnector.deadline() if reconnector is not None and self.hold.active else None

    def _keep_parts_alive(self) -> None:
        if not self.watcher.alive():
            log.error("watcher_died", inbox=str(self.config.folders.inbox), action="restarting")
            self._start_watcher()
            self._next_rescan = 0.0
        if not self.parts.prober.is_alive():
            log.error("prober_died", action="restarting")
            self.parts.restart_prober()

    def _tick(self) -> None:
        now = self.heartbeat = time.monotonic()
        if now >= self._next_rescan:
            self._rescan()
        if now >= self._next_prune:
            self._prune()
        self.parts.ledger.check()
        self.parts.fetches.ripen()
        self._drain()
        self.hold.tell()
        self.notices.announcer.tick()
        self._snapshot_if_due(time.monotonic())
        self.notifier.watchdog(time.monotonic())

    def _prune(self) -> None:
        """Apply ``retention.sent_days`` to ``sent/``, then count what it holds."""
        self._next_prune = time.monotonic() + PRUNE_EVERY
        days = self.config.sent_days
        if days is not None and (removed := prune(self.config.folders.sent, days)):
            log.info("sent_pruned", removed=removed, older_than_days=days)
        self._recount(sent=True)

    def _rescan(self) -> None:
        for path in scan(self.config.folders.inbox):
            self.inbox.note(Seen(path, Arrival.SCAN))
        self._recount(sent=False)
        self._next_rescan = time.monotonic() + self.config.watch.rescan_interval

    def _recount(self, sent: bool) -> None:
        """Count what the folders hold, so the counts follow ``magnetd retry`` and hands.

        ``failed/`` is small and counted at every rescan; ``sent/`` may hold hundreds
        of thousands of files and is counted at start and with each retention pass.
        """
        self.counters.failed = count_files(self.config.folders.failed)
        if sent:
            self.counters.sent = count_files(self.config.folders.sent)

    def _drain(self) -> None:
        """Send every due file, oldest first, batch by batch, while an instance takes them.

        See :class:`~magnetd.service.pipeline.Pipeline`.
        """
        due = self.inbox.next_due()
        if due is None:
            self.hold.clear()
            return
        if due > time.monotonic():  # nothing to send yet: no VPN re-check, no batch
            return
        if not self.parts.dispatcher.candidates():
            self._hold()  # the tick's snapshot shows the hold and what caused it
            return
        self.hold.end()
        self._snapshot_if_due(time.monotonic())  # a gate found down just now shows before files move
        stop, keepalive = self._stop.is_set, self._keepalive
        ready = partial(self.events.put, READY)
        Pipeline(
            self.parts,
            self.inbox,
            self.hold,
            stop,
            self._hold,
            self._landing,
            self._arrivals,
            keepalive,
            ready,
        ).run()
        self._next_snapshot = min(self._next_snapshot, time.monotonic() + AFTER_PASS)  # the new counts

    def _landing(self) -> None:
        now = time.monotonic()
        self.notifier.watchdog(now)
        self._snapshot_if_due(now)

    def _hold(self) -> None:
        reconnector = self.parts.reconnector
        reconnecting = reconnector is not None and reconnector.holding()
        reason = "waiting for the VPN to reconnect" if reconnecting else "no healthy instance"
        self.hold.start(reason, self.parts.health.summary())

    # -- status, reload, shutdown ------------------------------------------------------------

    def _snapshot_if_due(self, now: float) -> None:
        """Write the status snapshot when it is due, or at once after any change of status."""
        if now >= self._next_snapshot or self._snapshot_generation != self.parts.health.generation:
            self._snapshot()

    def _snapshot(self) -> None:
        self._snapshot_generation = self.parts.health.generation  # a status change writes a new one at once
        self.latest = snapshot(self).to_dict()
        self._write(self.latest)
        self.notifier.status(status_line(self))
        self._next_snapshot = time.monotonic() + min(self.config.probe_interval, IDLE_TICK)

    def _do_reload(self, trigger: str = "signal", changed: Sequence[str] = ()) -> None:
        """Re-read the config (SIGHUP, or a changed file); a bad one is refused and the old kept."""
        self._reload.clear()
        self.notifier.reloading()
        why = {"trigger": trigger, "changed": list(changed)}
        self._watch.reading()
        try:
            config = load(self.config.path)
        except ConfigError as exc:
            self._watch.read(None)
            log.error(
                "config_reload_failed",
                config=str(exc.path),
                problems=[str(p) for p in exc.problems],
                action="keeping the running config",
                **why,
            )
            self.notifier.ready(status_line(self))
            return
        self._watch.read(config)
        for warning in config.warnings:
            log.warning("config_warning", detail=warning)
        logs.register_secrets(config.secrets())
        self.notices.reconfigure(config.notify)
        self._reconfigure_portal(config)
        self.parts.close()
        if config.folders != self.config.folders:
            self.watcher.stop()
            self.inbox = Inbox(config.folders.inbox)
            self.hold = Hold(self.inbox, self.counters, self.notices.announcer)
            self.watcher = Watcher(config.folders.inbox, self.events, config.watch.polling)
            ensure_folders(config.folders)
            self._start_watcher()
            self._next_rescan = 0.0
        self.config = config
        self.parts = self._parts(config)
        self.parts.prober.round()
        self.parts.prober.start()
        log.info("config_reloaded", config=str(config.path), **why)
        self.notifier.ready(status_line(self))

    def _reconfigure_portal(self, config: Config) -> None:
        if self.portal is not None and config.http is not None:
            self.portal.reconfigure(config.http)
            return
        if self.portal is not None:
            self.portal.stop()
        self.portal = _portal(self, config)
        if self.portal is not None:
            self.portal.start()

    def _shutdown(self) -> None:
        self.notifier.stopping()
        if self.portal is not None:
            self.portal.stop()
        self.watcher.stop()
        self.parts.close()
        self.parts.spool.flush()
        self.notices.close()
        self._snapshot_final()
        log.info(
            "daemon_stopped", waiting=len(self.inbox), sent=self.counters.sent, failed=self.counters.failed
        )

    def _snapshot_final(self) -> None:
        snap = snapshot(self)
        snap.pid = 0  # nobody runs any more: `magnetd status` says so at once
        self._write(snap.to_dict())

    def _write(self, snap: Mapping[str, Any]) -> None:
        try:
            status.write(self.config.folders.state, snap)
        except OSError as exc:
            log.error("status_write_failed", error=str(exc), state=str(self.config.folders.state))


def _portal(supervisor: Supervisor, config: Config) -> Portal | None:
    """The status endpoint, when ``http`` is configured (its server and metrics load only then)."""
    if config.http is None:
        return None
    from magnetd.service.portal import Portal

    return Portal(supervisor, config.http)
