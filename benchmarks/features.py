"""What ``--notify`` and ``--http`` add to every daemon a run starts, and how they are observed.

``--notify``: two notification targets, a webhook and an Apprise ``json://`` URL, each
pointing at a real HTTP receiver on 127.0.0.1 that this process runs (``tests.receiver``),
inside the run's network namespace. Each daemon gets its own URL path, so the requests it
caused can be counted after it stopped (a stopping daemon sends what waits and gives its
deliveries 5 s). ``--http``: the status endpoint on a free loopback port with a token; the
idle scenario scrapes ``/metrics`` with it every 15 s (:class:`Scraper`).
"""

from __future__ import annotations

import math
import secrets
import statistics
import threading
import time
from dataclasses import dataclass
from typing import Any

import requests

from benchmarks.probes import BenchError
from tests.receiver import Receiver, Request

Figures = dict[str, float]
NOTIFY_EVENTS = ["file_sent", "file_failed", "holding", "drained", "instance_down", "instance_up"]
DIGEST_SECONDS = 1.0
"""Short digests, so that deliveries happen inside the measured windows (the default, 30 s,
would send every digest of a 5 s bulk run after its end)."""
HTTP_TOKEN_ENV = "MAGNETD_BENCH_HTTP_TOKEN"
SCRAPE_INTERVAL = 15.0
SCRAPE_TIMEOUT = 5.0


@dataclass(frozen=True)
class Options:
    """The optional parts of magnetd a run switches on."""

    notify: bool = False
    http: bool = False

    @property
    def label(self) -> str:
        """``none``, ``notify``, ``http`` or ``notify+http``: for tables and file names."""
        on = [name for name, value in (("notify", self.notify), ("http", self.http)) if value]
        return "+".join(on) or "none"

    def describe(self) -> dict[str, Any]:
        """What results.json says about them."""
        return {
            "label": self.label,
            "notify": (
                {
                    "targets": ["webhook -> 127.0.0.1 receiver", "apprise json://127.0.0.1 receiver"],
                    "events": NOTIFY_EVENTS,
                    "digest_seconds": DIGEST_SECONDS,
                }
                if self.notify
                else None
            ),
            "http": (
                {"listen": "127.0.0.1:0", "token": f"token_env {HTTP_TOKEN_ENV}", "scrape_every_s": 15}
                if self.http
                else None
            ),
        }


class Features:
    """The receivers and the token of one run; :meth:`close` stops the receivers."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.token = secrets.token_hex(16)
        self.hook = Receiver() if options.notify else None
        self.apprise = Receiver() if options.notify else None

    def configure(self, config: dict[str, Any], env: dict[str, str], name: str) -> None:
        """Add the ``notify`` and ``http`` sections for the daemon called ``name``."""
        if self.hook is not None and self.apprise is not None:
            config["notify"] = {
                "digest_seconds": DIGEST_SECONDS,
                "targets": [
                    {"name": "hook", "webhook": f"http://127.0.0.1:{self.hook.port}/{name}"},
                    {"name": "phone", "apprise": f"json://127.0.0.1:{self.apprise.port}/{name}"},
                ],
            }
            for target in config["notify"]["targets"]:
                target["events"] = list(NOTIFY_EVENTS)
        if self.options.http:
            config["http"] = {"listen": "127.0.0.1:0", "token_env": HTTP_TOKEN_ENV}
            env[HTTP_TOKEN_ENV] = self.token

    def tally(self, name: str) -> dict[str, int]:
        """What the receivers got from the daemon called ``name`` (call it once that daemon stopped)."""
        if self.hook is None or self.apprise is None:
            return {}
        hooked = _from(self.hook, name)
        bodies = [request.json() for request in hooked]
        return {
            "webhook_posts": len(hooked),
            "apprise_posts": len(_from(self.apprise, name)),
            "sent_files": sum(b["data"].get("count", 0) for b in bodies if b.get("event") == "file_sent"),
            "failed_files": sum(b["data"].get("count", 0) for b in bodies if b.get("event") == "file_failed"),
        }

    def close(self) -> None:
        for receiver in (self.hook, self.apprise):
            if receiver is not None:
                receiver.close()


def _from(receiver: Receiver, name: str) -> list[Request]:
    with receiver.arrived:
        return [request for request in receiver.requests if request.path == f"/{name}"]


class Scraper(threading.Thread):
    """GETs ``url`` with the token every ``interval`` s, the first time at once, like Prometheus.

    It makes one scrape per started ``interval`` of a ``window`` of seconds (0, 15, 30 and
    45 s of a 60 s window), so none races the end of the window.
    """

    def __init__(self, url: str, token: str, window: float, interval: float = SCRAPE_INTERVAL) -> None:
        super().__init__(name="bench-scraper", daemon=True)
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}"}
        self.interval = interval
        self.limit = max(1, math.ceil(window / interval))
        self.seconds: list[float] = []
        self.errors: list[str] = []
        self._halt = threading.Event()

    def run(self) -> None:
        with requests.Session() as session:
            first = time.monotonic()
            for index in range(self.limit):
                if self._halt.wait(max(0.0, first + index * self.interval - time.monotonic())):
                    return
                self._scrape(session)

    def _scrape(self, session: requests.Session) -> None:
        started = time.monotonic()
        try:
            answer = session.get(self.url, headers=self.headers, timeout=SCRAPE_TIMEOUT)
        except requests.RequestException as exc:
            self.errors.append(type(exc).__name__)
            return
        if answer.status_code != 200 or "magnetd_build_info" not in answer.text:
            self.errors.append(f"HTTP {answer.status_code}")
            return
        self.seconds.append(time.monotonic() - started)

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(SCRAPE_TIMEOUT + 1)

    def figures(self) -> Figures:
        """How many scrapes answered, and their median time; BenchError if any failed."""
        if self.errors or not self.seconds:
            raise BenchError(f"/metrics scrapes failed: {self.errors or 'none was made'}")
        return {
            "idle_scrapes": float(len(self.seconds)),
            "idle_scrape_median_ms": statistics.median(self.seconds) * 1000,
        }
