"""Log set-up: redaction, target choice, journald fields and the native protocol."""

from __future__ import annotations

import io
import json
import os
import socket
import struct
from pathlib import Path

import pytest
import structlog

from magnetd import logs
from magnetd.service import journal


def test_redact_masks_secret_keys_and_registered_values() -> None:
    logs.register_secrets(["hunter2-secret"])
    event = logs.redact(
        None, "info", {"password": "x", "SID": "abc", "detail": "login hunter2-secret failed"}
    )
    assert event == {"password": "***", "SID": "***", "detail": "login *** failed"}


def test_json_output_never_shows_the_password() -> None:
    stream = io.StringIO()
    logs.register_secrets(["pa55word-xyz"])
    logs.setup("json", stream=stream)
    structlog.get_logger().warning("login_failed", detail="sent pa55word-xyz", cookie="SID=1")
    line = json.loads(stream.getvalue())
    assert "pa55word-xyz" not in stream.getvalue()
    assert line["event"] == "login_failed" and line["cookie"] == "***"


def test_auto_target_picks_journal_only_when_stderr_is_the_journal_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open(tmp_path / "stream", "w") as stream:
        info = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{info.st_dev}:{info.st_ino}")
        assert logs.choose_target("auto", stream) == "journal"
        monkeypatch.setenv("JOURNAL_STREAM", f"{info.st_dev}:{info.st_ino + 1}")
        assert logs.choose_target("auto", stream) == "json"
    assert logs.choose_target("console", io.StringIO()) == "console"


def test_journal_fields_repeat_infohashes_and_use_valid_names() -> None:
    event = {
        "event": "file_sent",
        "level": "info",
        "file": "a b.magnet",
        "infohashes": ["aa", "bb"],
        "instance": "local",
        "weird-key.x": 1,
        "none": None,
    }
    pairs = list(journal.fields(event))
    names = [k for k, _ in pairs]
    assert ("MAGNETD_INFOHASH", "aa") in pairs and ("MAGNETD_INFOHASH", "bb") in pairs
    assert ("PRIORITY", "6") in pairs and ("SYSLOG_IDENTIFIER", "magnetd") in pairs
    assert ("MAGNETD_EVENT", "file_sent") in pairs and "MAGNETD_WEIRD_KEY_X" in names
    assert names.count("MAGNETD_EVENT") == 1
    assert "MAGNETD_NONE" not in names
    assert all(name.replace("_", "").isalnum() and name.isupper() for name in names)


def test_native_protocol_length_prefixes_multi_line_values() -> None:
    data = journal.encode(iter([("MESSAGE", "a\nb"), ("PRIORITY", "3")]))
    assert data == b"MESSAGE\n" + struct.pack("<Q", 3) + b"a\nb\n" + b"PRIORITY=3\n"


def test_renderer_sends_to_a_socket_and_falls_back_when_it_is_gone(tmp_path: Path) -> None:
    path = tmp_path / "journal.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        renderer = journal.JournalRenderer(fallback=io.StringIO(), path=str(path))
        with pytest.raises(structlog.DropEvent):
            renderer(None, "info", {"event": "x", "level": "error", "file": "f"})
        received = server.recv(65536).decode()
    assert "MAGNETD_FILE=f\n" in received and "PRIORITY=3\n" in received
    path.unlink()
    line = renderer(None, "info", {"event": "x", "level": "info"})
    assert json.loads(line)["event"] == "x"
