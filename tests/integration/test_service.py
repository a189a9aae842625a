"""magnetd as a service: the unit verifies, sd_notify over a real socket, a real journald, `add`."""

from __future__ import annotations

import io
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
import structlog

from magnetd.service import journal
from tests.daemon import Daemon, drop, instance, wait_for
from tests.integration.conftest import magnet, torrent_file
from tests.qbt import Qbt
from tests.realparts import missing, need_program, need_root

UNIT = Path(__file__).parents[2] / "packaging" / "systemd" / "magnetd.service"
JOURNALD = "/lib/systemd/systemd-journald"
JOURNAL_SOCKET = "/run/systemd/journal/socket"


def test_unit_file_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = need_program("systemd-analyze")
    script = shutil.which("magnetd") or str(Path(sys.executable).parent / "magnetd")
    unit = tmp_path / "magnetd.service"
    text = UNIT.read_text().replace("/opt/magnetd/bin/magnetd", script)
    assert "Type=notify" in text and "WatchdogSec=" in text and "CAP_NET_RAW" in text
    unit.write_text(text)
    result = subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr  # systemd only warns about unknown settings


class NotifyListener:
    """A datagram socket standing in for systemd's notify socket; records every message."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._stop = False
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append((time.monotonic(), data.decode()))

    def fields(self, key: str) -> list[tuple[float, str]]:
        """(time, message) of every message holding ``KEY=``."""
        return [(t, m) for t, m in self.messages if any(line.startswith(key + "=") for line in m.split("\n"))]

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[NotifyListener]:
    sink = NotifyListener(tmp_path / "notify.sock")
    yield sink
    sink.close()


def test_sd_notify_ready_status_watchdog_reload_stopping(daemon: Daemon, listener: NotifyListener) -> None:
    daemon.env.update(NOTIFY_SOCKET=str(listener.path), WATCHDOG_USEC="2000000")
    daemon.start()
    wait_for(lambda: listener.fields("READY"), 20, "READY=1")
    ready_message = listener.fields("READY")[0][1]
    assert "STATUS=" in ready_message and "local" in ready_message
    time.sleep(4)
    pets = [t for t, _ in listener.fields("WATCHDOG")]
    assert len(pets) >= 3
    gaps = [b - a for a, b in itertools.pairwise(pets)]
    assert max(gaps) < 2.0, f"a watchdog gap reached WATCHDOG_USEC: {gaps}"

    assert daemon.process is not None
    readies = len(listener.fields("READY"))
    daemon.process.send_signal(signal.SIGHUP)
    wait_for(lambda: len(listener.fields("READY")) > readies, 20, "READY=1 after reload")
    reloading = listener.fields("RELOADING")
    assert reloading and "MONOTONIC_USEC=" in reloading[0][1]
    assert daemon.events("config_reloaded")

    # a broken config is refused on reload and the old one kept
    good = daemon.config_path.read_text()
    daemon.config_path.write_text(good + "probe_intervall: 3\n")
    readies = len(listener.fields("READY"))
    daemon.process.send_signal(signal.SIGHUP)
    wait_for(lambda: daemon.events("config_reload_failed"), 20, "config_reload_failed")
    wait_for(lambda: len(listener.fields("READY")) > readies, 20, "READY=1 after refused reload")
    assert "probe_intervall" in json.dumps(daemon.events("config_reload_failed"))
    link, _ = magnet("after-bad-reload")
    drop(daemon.inbox, "after.magnet", link)
    wait_for(lambda: (daemon.sent / "after.magnet").exists(), 20, "still sending on the old config")

    assert daemon.stop() == 0
    assert listener.fields("STOPPING")


def _journal_running() -> bool:
    if not os.path.exists(JOURNAL_SOCKET):
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(JOURNAL_SOCKET)
        except OSError:
            return False
    return True


@pytest.fixture(scope="module")
def journald() -> Iterator[None]:
    """A real systemd-journald: the running one, or a standalone one started here (as root)."""
    need_program("journalctl")
    if _journal_running():
        yield
        return
    need_root("starting a standalone systemd-journald")
    if not os.access(JOURNALD, os.X_OK):
        missing(f"{JOURNALD} is not installed (Debian package systemd)")
    process = subprocess.Popen([JOURNALD], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(_journal_running, 20, "systemd-journald's socket")
        yield
    finally:
        process.terminate()
        process.wait(10)


def journal_entries(**match: str) -> list[dict[str, str]]:
    args = ["journalctl", "-o", "json", "--no-pager", *(f"{k}={v}" for k, v in match.items())]
    result = subprocess.run(args, capture_output=True, text=True)
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def test_journal_entries_carry_magnetd_fields(daemon: Daemon, journald: None) -> None:
    daemon.start_args = ["--log-target", "journal"]
    daemon.start()
    links = [magnet(f"journal{i}") for i in range(2)]
    drop(daemon.inbox, "journal.magnet", "\n".join(link for link, _ in links))
    wait_for(lambda: (daemon.sent / "journal.magnet").exists(), 30, "journal.magnet in sent/")
    for _, infohash in links:
        entries = wait_for(partial(journal_entries, MAGNETD_INFOHASH=infohash), 20, "journal entry")
        sent = [e for e in entries if e.get("MAGNETD_EVENT") == "file_sent"]
        assert sent, entries
        entry = sent[0]
        assert entry["SYSLOG_IDENTIFIER"] == "magnetd"
        assert entry["PRIORITY"] == "6"
        assert entry["MAGNETD_INSTANCE"] == "local"
        assert entry["MAGNETD_FILE"] == "journal.magnet"
        assert entry["MESSAGE"].startswith("file_sent")
    assert daemon.stop() == 0
    assert "file_sent" not in daemon.output(), "events went to the journal, not stderr"


def test_journald_takes_multi_line_and_oversized_entries(journald: None) -> None:
    """The native protocol against the real journald: a traceback's length-prefixed value, and an
    entry too large for one datagram, handed over by ``systemd-python`` in a memory file."""
    if journal._sendv is None:
        missing("systemd-python (the [systemd] extra) is not installed: it sends oversized entries")
    mark = f"{os.getpid()}-{time.monotonic_ns()}"
    fallback = io.StringIO()
    renderer = journal.JournalRenderer(fallback=fallback)  # the system's socket, as under systemd
    big = "x" * (1 << 20)  # past the largest datagram journald's socket takes
    events = [
        {"event": "boom", "level": "error", "test_mark": mark, "exception": "Traceback\n  line\nError"},
        {"event": "huge", "level": "info", "test_mark": mark, "detail": big},
    ]
    for event in events:
        with pytest.raises(structlog.DropEvent):
            renderer(None, "info", dict(event))
    assert fallback.getvalue() == ""

    def both() -> list[dict[str, str]]:
        args = ["journalctl", "-o", "json", "--all", "--no-pager", f"MAGNETD_TEST_MARK={mark}"]
        done = subprocess.run(args, capture_output=True, text=True)
        found = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        return found if len(found) == 2 else []

    boom, huge = sorted(wait_for(both, 20, "both entries in the journal"), key=lambda e: e["MAGNETD_EVENT"])
    assert boom["MAGNETD_TRACEBACK"] == "Traceback\n  line\nError" and boom["PRIORITY"] == "3"
    assert boom["MESSAGE"].startswith("boom\nTraceback")
    assert huge["MAGNETD_DETAIL"] == big


def test_journal_missing_falls_back_to_stderr(daemon: Daemon, tmp_path: Path) -> None:
    daemon.env["MAGNETD_JOURNAL_SOCKET"] = str(tmp_path / "no-journal.sock")
    daemon.start_args = ["--log-target", "journal"]
    daemon.start()
    drop(daemon.inbox, "fallback.magnet", magnet("fallback")[0])
    wait_for(lambda: daemon.events("file_sent"), 30, "file_sent on stderr")
    assert daemon.events("daemon_started")
    assert daemon.stop() == 0


def test_magnetd_add_reaches_qbittorrent(daemon: Daemon, qbt: Qbt, tmp_path: Path) -> None:
    daemon.start()
    link, infohash = magnet("added-by-cli")
    data, torrent_hash = torrent_file("added-file")
    torrent = tmp_path / "dropped.torrent"
    torrent.write_bytes(data)
    result = daemon.command("add", link, str(torrent))
    assert result.returncode == 0, result.stderr
    api = qbt.api()
    api.login()
    wait_for(lambda: len(api.torrents(hashes=f"{infohash}|{torrent_hash}")) == 2, 30, "both added")
    wait_for(lambda: len(daemon.files(daemon.sent)) == 2, 10, "both in sent/")
    bad = daemon.command("add", "ftp://example.invalid/not-a-magnet")
    assert bad.returncode == 1 and "not_magnet" in bad.stderr
    assert daemon.stop() == 0


def test_an_unexpected_error_reaches_the_journal_with_its_traceback(tmp_path: Path, journald: None) -> None:
    """`daemon_failed` from the catch-all in `magnetd run`: journalctl shows the whole traceback."""
    runner = Daemon(tmp_path / "magnetd", [instance("local", "http://127.0.0.1:9/", "pw")])
    (tmp_path / "magnetd" / "sent").write_text("a file where the sent/ folder should be")
    runner.start_args = ["--log-target", "journal"]
    runner.start(wait=False)
    assert runner.process is not None
    assert runner.process.wait(30) == 1
    pid = str(runner.process.pid)
    entries = wait_for(
        lambda: journal_entries(_PID=pid, MAGNETD_EVENT="daemon_failed"), 20, "daemon_failed in the journal"
    )
    (entry,) = entries
    assert entry["PRIORITY"] == "2" and entry["MAGNETD_LOGGER"] == "magnetd.cli"
    assert entry["MAGNETD_ERROR"].startswith("FileExistsError(")
    traceback = entry["MAGNETD_TRACEBACK"]
    assert traceback.startswith("Traceback (most recent call last)")
    assert "in ensure_folders" in traceback and str(tmp_path / "magnetd" / "sent") in traceback
    # what a person reads: `journalctl -u magnetd` prints MESSAGE, the summary line then the traceback
    shown = subprocess.run(
        ["journalctl", "--no-pager", "-o", "short", f"_PID={pid}", "MAGNETD_EVENT=daemon_failed"],
        capture_output=True,
        text=True,
    ).stdout
    assert "daemon_failed error=FileExistsError(" in shown
    assert "Traceback (most recent call last)" in shown and "in ensure_folders" in shown
    assert "FileExistsError: [Errno 17] File exists" in shown
    assert runner.output() == "", "the event went to the journal, not stderr"
