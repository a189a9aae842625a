"""The dashboard page in a real headless Chromium (Debian's ``chromium``, driven by Playwright),
served by the real endpoint over a fake backend whose state the test changes.

Set ``MAGNETD_DASHBOARD_SHOTS=DIR`` to keep the screenshots (``dashboard.png``,
``dashboard-phone.png``) in DIR, e.g. ``docs``.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from magnetd.model import InstanceStatus
from tests.daemon import drop
from tests.fakes import FakeBackend
from tests.qbt import Qbt
from tests.realparts import missing, need_program
from tests.webparts import TOKEN, base_url, serving

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Request

pytestmark = pytest.mark.real

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
WAIT_MS = 15_000  # the page refreshes every 5 s


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = need_program("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed (pip install playwright; its browsers are not needed)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=ARGS)
        yield launched
        launched.close()


def ago(seconds: float) -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)).isoformat(timespec="seconds")


def keep(shot: Path, name: str) -> None:
    folder = os.environ.get("MAGNETD_DASHBOARD_SHOTS")
    if folder:
        shutil.copyfile(shot, Path(folder) / name)


def badge(instance: str) -> str:
    return f'[data-instance="{instance}"] .badge'


def test_dashboard_shows_instances_reasons_and_updates_by_itself(browser: Browser, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    backend = FakeBackend()
    with backend.lock:  # the backup has been down for 3 minutes
        backend.state["instances"][1]["since"] = ago(185)
    with serving(backend) as server:
        url = base_url(server)
        page = browser.new_page(viewport={"width": 1100, "height": 760})
        requests: list[Request] = []
        errors: list[str] = []
        page.on("request", lambda r: requests.append(r))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(f"{url}/?token={TOKEN}")

        expect(page.locator(badge("primary"))).to_have_text("\u2713 OK", timeout=WAIT_MS)
        expect(page.locator(badge("backup"))).to_have_text("\u2717 UNREACHABLE")
        expect(page.locator('[data-instance="backup"]')).to_contain_text("for 3 min")
        expect(page.locator('[data-instance="backup"]')).to_contain_text("connection refused")
        expect(page.locator('[data-file="bad link.magnet"]')).to_contain_text("reason: not_magnet")
        expect(page.locator("#gates")).to_contain_text("10.8.0.1")
        expect(page.locator("#inbox")).to_contain_text("1 min")
        expect(page.locator("#overall")).to_have_text("DEGRADED")
        expect(page.locator("#banner")).to_be_hidden()
        page.screenshot(path=tmp_path / "dashboard.png", full_page=True)
        keep(tmp_path / "dashboard.png", "dashboard.png")

        page.evaluate("window.stillTheSamePage = true")
        backend.set_instance("primary", InstanceStatus.VPN_DOWN, "VPN gate 10.8.0.1 does not answer")
        backend.outcome("late.magnet", "failed", "bad_hash", None)
        with backend.lock:
            backend.state["held"] = 2
        expect(page.locator(badge("primary"))).to_have_text("! VPN_DOWN", timeout=WAIT_MS)
        expect(page.locator('[data-instance="primary"]')).to_contain_text("VPN gate 10.8.0.1 does not answer")
        expect(page.locator('[data-file="late.magnet"]')).to_contain_text("reason: bad_hash")
        expect(page.locator("#overall")).to_have_text("HOLDING")
        assert page.evaluate("window.stillTheSamePage") is True  # updated in place, not reloaded

        page.set_viewport_size({"width": 390, "height": 844})
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        page.screenshot(path=tmp_path / "dashboard-phone.png", full_page=True)
        keep(tmp_path / "dashboard-phone.png", "dashboard-phone.png")
        page.close()

    assert errors == []  # nothing refused by the page's Content-Security-Policy, no script error
    assert {urlsplit(r.url)[:2] for r in requests} == {urlsplit(url)[:2]}  # nothing from elsewhere
    fetches = [r for r in requests if r.url.endswith("/api/status")]
    assert len(fetches) >= 2
    assert all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in fetches)
    assert [r.url for r in requests if TOKEN in r.url] == [f"{url}/?token={TOKEN}"]


def test_dashboard_says_when_magnetd_is_gone_or_the_token_is_refused(browser: Browser) -> None:
    from playwright.sync_api import expect

    backend = FakeBackend()
    page = browser.new_page()
    banner = page.locator("#banner")
    with serving(backend) as server:
        port = server.port
        page.goto(f"{base_url(server)}/?token={TOKEN}")
        expect(page.locator(badge("primary"))).to_have_text("\u2713 OK", timeout=WAIT_MS)
        expect(banner).to_be_hidden()
    expect(banner).to_contain_text("Cannot reach magnetd", timeout=WAIT_MS)
    expect(page.locator(badge("primary"))).to_have_text("\u2713 OK")  # the last status stays

    with serving(backend, token="another-token", listen=f"127.0.0.1:{port}"):
        expect(banner).to_contain_text("The token was refused", timeout=WAIT_MS)
    with serving(backend, listen=f"127.0.0.1:{port}"):
        expect(banner).to_be_hidden(timeout=WAIT_MS)
    page.close()


def test_dashboard_of_a_real_daemon_sees_its_instance_stop(
    browser: Browser, tmp_path: Path, own_qbt: Qbt
) -> None:
    """The page over a real daemon and a real qbittorrent-nox: it updates when the instance stops."""
    from playwright.sync_api import expect

    from tests.integration.test_endpoint import TOKEN as DAEMON_TOKEN
    from tests.integration.test_endpoint import serving_daemon

    daemon, base = serving_daemon(tmp_path / "magnetd", own_qbt)
    with daemon:
        drop(daemon.inbox, "junk.magnet", "not a magnet\n")
        page = browser.new_page()
        page.goto(f"{base}/?token={DAEMON_TOKEN}")
        expect(page.locator(badge("local"))).to_have_text("\u2713 OK", timeout=WAIT_MS)
        expect(page.locator('[data-file="junk.magnet"]')).to_contain_text(
            "reason: not_magnet", timeout=WAIT_MS
        )
        own_qbt.stop()
        expect(page.locator(badge("local"))).to_have_text("\u2717 UNREACHABLE", timeout=WAIT_MS)
        expect(page.locator('[data-instance="local"]')).to_contain_text("connection refused")
        page.close()
