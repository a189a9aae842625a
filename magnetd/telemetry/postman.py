"""The postman: delivers events to every target that wants them, off the caller's thread.

Each target has its own bounded queue and its own worker thread, so a slow or
dead target delays nobody: :meth:`Postman.post` never blocks, and when a
target's queue is full the oldest event waiting for it is dropped (counted,
and logged once per burst as ``notify_dropped``). A delivery is tried up to
``tries`` times while the target answers ``RETRY``, with the same event (same
``id``) each time and the back-off between tries; ``FAILED`` is final at once.
A delivery's final result is ``DELIVERED`` or ``FAILED``, never ``RETRY``.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from magnetd import logs
from magnetd.telemetry.events import Event, wanted
from magnetd.telemetry.targets import Outcome, Result, Target, TargetSpec, build

log = logs.get("magnetd.notify")

OnResult = Callable[[str, Event, Result], None]
DROPPED = "dropped"
COUNTED = (Outcome.DELIVERED.value, Outcome.FAILED.value, DROPPED)
"""The results counted per target (see :meth:`Postman.counts`)."""


class _Mailbox:
    """One target's bounded queue of events and the state its worker shares with ``post``."""

    def __init__(self, target: Target, size: int) -> None:
        self.target = target
        self.size = size
        self.queue: collections.deque[Event] = collections.deque()
        self.ready = threading.Condition()
        self.overflowing = False  # a burst of drops is under way: logged once
        self.thread: threading.Thread | None = None

    def put(self, event: Event) -> Event | None:
        """Queue ``event``; the event dropped to make room, if any."""
        with self.ready:
            dropped = self.queue.popleft() if len(self.queue) >= self.size else None
            self.queue.append(event)
            self.ready.notify()
            return dropped


class Postman:
    """Delivers events to targets from one worker thread and one bounded queue per target."""

    def __init__(
        self,
        targets: Iterable[TargetSpec | Target],
        *,
        tries: int = 3,
        backoff: Sequence[float] = (1.0, 4.0),
        queue_size: int = 100,
        on_result: OnResult | None = None,
    ) -> None:
        if tries < 1 or queue_size < 1 or not backoff or min(backoff) < 0:
            raise ValueError("tries and queue_size must be at least 1, and backoff non-negative")
        built = [build(t) if isinstance(t, TargetSpec) else t for t in targets]
        names = [t.name for t in built]
        if len(set(names)) != len(names):
            raise ValueError("notify target names must be unique")
        self.tries = tries
        self.backoff = tuple(backoff)
        self.on_result = on_result
        self._boxes = {t.name: _Mailbox(t, queue_size) for t in built}
        self._counts = {name: dict.fromkeys(COUNTED, 0) for name in names}
        self._counts_lock = threading.Lock()
        self._closed = False
        self._stopping = threading.Event()  # no more retries or back-off waits
        self._abort = threading.Event()  # past close's deadline: leave the queues
        for box in self._boxes.values():
            box.thread = threading.Thread(
                target=self._work, args=(box,), name=f"notify-{box.target.name}", daemon=True
            )
            box.thread.start()

    @property
    def targets(self) -> list[Target]:
        return [box.target for box in self._boxes.values()]

    def post(self, event: Event) -> None:
        """Queue ``event`` for every target that wants it; returns at once, never blocks."""
        if self._closed:
            log.debug("notify_ignored", notification=str(event.name), id=event.id, reason="closed")
            return
        for box in self._boxes.values():
            if wanted(event.name, box.target.events):
                dropped = box.put(event)
                if dropped is not None:
                    self._dropped(box, dropped)

    def _dropped(self, box: _Mailbox, event: Event) -> None:
        self._count(box.target.name, DROPPED)
        with box.ready:
            first = not box.overflowing
            box.overflowing = True
        if first:
            log.warning(
                "notify_dropped",
                target=box.target.name,
                notification=str(event.name),
                id=event.id,
                reason="queue_full",
                queue_size=box.size,
            )

    def _work(self, box: _Mailbox) -> None:
        while True:
            with box.ready:
                while not box.queue and not self._stopping.is_set():
                    box.overflowing = False  # caught up: the next drop starts a new burst
                    box.ready.wait()
                if self._abort.is_set() or not box.queue:
                    return
                event = box.queue.popleft()
            self._finish(box.target, event, self._attempt(box.target, event, None))

    def _attempt(
        self, target: Target, event: Event, deadline: float | None, tried: list[int] | None = None
    ) -> Result:
        """Deliver ``event`` to ``target``, retrying RETRY results; the final result."""
        result = Result(Outcome.FAILED, "not tried", tries=0)
        for attempt in range(1, self.tries + 1):
            if tried is not None:
                tried[0] = attempt
            result = dataclasses.replace(_safe_deliver(target, event), tries=attempt)
            if result.outcome != Outcome.RETRY or attempt == self.tries:
                break
            wait = self.backoff[min(attempt - 1, len(self.backoff) - 1)]
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                wait = min(wait, left)
            if self._stopping.wait(wait):
                break
        if result.outcome == Outcome.RETRY:
            result = dataclasses.replace(result, outcome=Outcome.FAILED)
        return result

    def _finish(self, target: Target, event: Event, result: Result) -> None:
        name = target.name
        self._count(name, result.outcome.value)
        fields: dict[str, Any] = {"target": name, "notification": str(event.name), "id": event.id}
        if result.delivered:
            log.debug("notify_sent", **fields, tries=result.tries)
        else:
            log.warning("notify_failed", **fields, detail=result.detail, tries=result.tries)
        if self.on_result is not None:
            try:
                self.on_result(name, event, result)
            except Exception as exc:  # a caller's bug must not stop deliveries
                log.error("notify_callback_failed", target=name, error=type(exc).__name__)

    def _count(self, name: str, result: str) -> None:
        with self._counts_lock:
            self._counts[name][result] += 1

    def counts(self) -> dict[str, dict[str, int]]:
        """A snapshot: per target name, how many deliveries were delivered, failed, dropped."""
        with self._counts_lock:
            return {name: dict(counts) for name, counts in self._counts.items()}

    def deliver_now(self, event: Event, timeout: float) -> dict[str, Result]:
        """Send ``event`` to every target that wants it, all at once; each target's final result.

        For ``magnetd notify --test`` (``test`` reaches every target). Retries as
        :meth:`post` does, within ``timeout`` seconds in all; a target still
        busy then is reported FAILED. Bypasses the queues.
        """
        deadline = time.monotonic() + timeout
        chosen = [box.target for box in self._boxes.values() if wanted(event.name, box.target.events)]
        results: dict[str, Result] = {}
        tried = {target.name: [0] for target in chosen}
        threads = []
        for target in chosen:

            def run(target: Target = target) -> None:
                results[target.name] = self._attempt(target, event, deadline, tried[target.name])

            thread = threading.Thread(target=run, name=f"notify-now-{target.name}", daemon=True)
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        final: dict[str, Result] = {}
        for target in chosen:
            result = results.get(target.name) or Result(
                Outcome.FAILED, f"no result within {timeout:g} s", tries=tried[target.name][0]
            )
            final[target.name] = result
            self._finish(target, event, result)
        return final

    def close(self, timeout: float = 5.0) -> bool:
        """Stop accepting events and retrying; deliver what is queued until ``timeout``; stop.

        Queued events are still tried once each (no retries once closing); those
        still queued at the deadline are dropped (counted; one ``notify_dropped``
        per target with ``reason=closing`` and ``count``). A delivery still
        running then is left to its daemon thread. True if every worker ended in time.
        """
        deadline = time.monotonic() + timeout
        self._closed = True
        self._stopping.set()
        self._wake()
        for box in self._boxes.values():
            if box.thread is not None:
                box.thread.join(max(0.0, deadline - time.monotonic()))
        self._abort.set()
        for box in self._boxes.values():
            with box.ready:
                left = list(box.queue)
                box.queue.clear()
                box.ready.notify_all()
            if left:
                with self._counts_lock:
                    self._counts[box.target.name][DROPPED] += len(left)
                log.warning("notify_dropped", target=box.target.name, reason="closing", count=len(left))
        alive = [box.target.name for box in self._boxes.values() if box.thread and box.thread.is_alive()]
        if alive:
            log.warning("notify_close_timeout", targets=alive)
        return not alive

    def _wake(self) -> None:
        for box in self._boxes.values():
            with box.ready:
                box.ready.notify_all()


def _safe_deliver(target: Target, event: Event) -> Result:
    """One attempt; a target that raises (a bug) fails the delivery instead of killing the worker."""
    try:
        return target.deliver(event)
    except Exception as exc:
        log.error(
            "notify_target_error", target=target.name, notification=str(event.name), error=type(exc).__name__
        )
        return Result(Outcome.FAILED, f"target raised {type(exc).__name__}")
