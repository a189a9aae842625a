"""The status endpoint of a real daemon with a real qbittorrent-nox: health, readiness, metrics,
the status object, adding and auth, while the instance stops and comes back."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.daemon import Daemon, drop, instance, wait_for
from tests.integration.conftest import magnet
from tests.qbt import Qbt

TOKEN = "endpoint-test-token-0123456789"


def serving_daemon(root: Path, qbt: Qbt) -> tuple[Daemon, str]:
    """A daemon with the endpoint on a free loopback port; returns it and the endpoint's base URL."""
    daemon = Daemon(
        root,
        [instance("local", qbt.url, qbt.password)],
        http={"listen": "127.0.0.1:0", "token_env": "MAGNETD_HTTP_TOKEN"},
    )
    daemon.env["MAGNETD_HTTP_TOKEN"] = TOKEN
    return daemon, daemon.start().endpoint()


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def metrics(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = requests.get(f"{base}/metrics", headers=auth(), timeout=5).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def metric(base: str, name: str, **labels: str) -> float:
    return metrics(base).get((name, tuple(sorted(labels.items()))), -1.0)


def test_endpoint_follows_a_real_daemon(tmp_path: Path, own_qbt: Qbt) -> None:
    daemon, base = serving_daemon(tmp_path / "magnetd", own_qbt)
    with daemon:
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
        assert requests.get(f"{base}/readyz", timeout=5).status_code == 200
        assert requests.get(f"{base}/api/status", timeout=5).status_code == 401
        assert requests.get(f"{base}/metrics", timeout=5).status_code == 401

        link, infohash = magnet("endpoint-added")
        refused = requests.post(f"{base}/api/add", data=link, timeout=5)
        assert refused.status_code == 401 and not daemon.files(daemon.inbox)
        added = requests.post(f"{base}/api/add", data=link, headers=auth(), timeout=5)
        assert added.status_code == 202, added.text
        wait_for(lambda: daemon.files(daemon.sent) == [added.json()["file"]], 20, "the added file in sent/")
        api = own_qbt.api()
        assert api.login() and api.torrents(hashes=infohash)
        big = requests.post(f"{base}/api/add", data=b"m" * (1024 * 1024 + 1), headers=auth(), timeout=10)
        assert big.status_code == 413

        drop(daemon.inbox, "junk.magnet", "not a magnet\n")
        wait_for(lambda: daemon.files(daemon.failed), 20, "junk in failed/")

        def recent() -> list[dict[str, str]]:
            found: list[dict[str, str]] = requests.get(
                f"{base}/api/status", headers=auth(), timeout=5
            ).json()["recent"]
            return found

        wait_for(lambda: len(recent()) == 2, 10, "two recent outcomes")
        newest, oldest = recent()
        assert newest["file"] == "junk.magnet" and newest["outcome"] == "failed"
        assert newest["reason"] == "not_magnet"
        assert oldest["outcome"] == "sent" and oldest["instance"] == "local"
        assert metric(base, "magnetd_files_total", outcome="sent") == 1
        assert metric(base, "magnetd_files_total", outcome="failed") == 1
        assert metric(base, "magnetd_magnets_total", outcome="added") == 1
        assert metric(base, "magnetd_instance_up", instance="local") == 1
        assert metric(base, "magnetd_inbox_files") == 0

        own_qbt.stop()
        wait_for(lambda: requests.get(f"{base}/readyz", timeout=5).status_code == 503, 20, "/readyz 503")
        assert requests.get(f"{base}/readyz", timeout=5).json()["ready"] is False
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
        drop(daemon.inbox, "held-1.magnet", magnet("held-1")[0])
        drop(daemon.inbox, "held-2.magnet", magnet("held-2")[0])
        wait_for(lambda: metric(base, "magnetd_inbox_files") == 2, 20, "two files waiting in the metrics")
        assert metric(base, "magnetd_instance_up", instance="local") == 0
        assert metric(base, "magnetd_instance_status", instance="local", status="UNREACHABLE") == 1
        first = metric(base, "magnetd_inbox_oldest_seconds")
        time.sleep(2.5)
        assert metric(base, "magnetd_inbox_oldest_seconds") > first, "the oldest file's age rises while held"

        own_qbt.start()
        wait_for(lambda: requests.get(f"{base}/readyz", timeout=5).status_code == 200, 20, "/readyz 200")
        wait_for(lambda: metric(base, "magnetd_inbox_files") == 0, 20, "the held files sent")
        assert metric(base, "magnetd_files_total", outcome="sent") == 3
        assert daemon.stop() == 0


def test_a_pass_reaches_the_status_object_within_a_second_not_at_the_next_periodic_write(
    tmp_path: Path, own_qbt: Qbt
) -> None:
    """At probe_interval 60 the snapshot is rewritten every 5 s; a pass's counts come sooner."""
    daemon = Daemon(
        tmp_path / "magnetd",
        [instance("local", own_qbt.url, own_qbt.password)],
        probe_interval=60,
        http={"listen": "127.0.0.1:0", "token_env": "MAGNETD_HTTP_TOKEN"},
    )
    daemon.env["MAGNETD_HTTP_TOKEN"] = TOKEN
    snapshot = daemon.state / "status.json"

    def shown() -> dict[str, Any]:
        answer: dict[str, Any] = requests.get(f"{base}/api/status", headers=auth(), timeout=5).json()
        return answer

    with daemon:
        base = daemon.start().endpoint()
        wait_for(lambda: shown()["instances"][0]["status"] == "OK", 10, "status OK")
        written = snapshot.stat().st_mtime_ns
        wait_for(lambda: snapshot.stat().st_mtime_ns != written, 10, "a periodic write")
        link, _ = magnet("prompt")  # dropped just after a periodic write: the next is 5 s away
        drop(daemon.inbox, "prompt.magnet", link)
        wait_for((daemon.sent / "prompt.magnet").exists, 10, "prompt.magnet in sent/")
        moved = time.monotonic()
        wait_for(lambda: shown()["sent"] == 1, 10, "the pass's count in the status object")
        took = time.monotonic() - moved
        assert took < 3, f"the pass's counts reached /api/status {took:.1f} s after the move"
        assert daemon.stop() == 0
