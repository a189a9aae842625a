"""Log set-up: redaction, target choice, journald fields and the native protocol.

On each target (console, JSON lines, a journal datagram socket): None fields left out,
tracebacks of unexpected errors, the logger's name.
"""

from __future__ import annotations

import dataclasses
import datetime
import io
import json
import os
import re
import secrets
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from magnetd import clock, logs
from magnetd.service import journal


def test_scrub_masks_secret_keys_and_registered_values() -> None:
    logs.register_secrets(["hunter2-secret"])
    event = logs.scrub(None, "info", {"password": "x", "SID": "abc", "detail": "login hunter2-secret failed"})
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
    data = journal.encode([("MESSAGE", "a\nb"), ("PRIORITY", "3")])
    assert data == b"MESSAGE\n" + struct.pack("<Q", 3) + b"a\nb\n" + b"PRIORITY=3\n"


@pytest.mark.parametrize("newline", [False, True])
def test_native_protocol_text_is_utf8_and_a_lone_surrogate_a_question_mark(newline: bool) -> None:
    """Both ways of building a datagram (joined lines; a field at a time) write the same bytes."""
    pairs = [("MAGNETD_FILE", "bad\udcff é.magnet"), ("PRIORITY", "6")]
    if newline:
        pairs.append(("MESSAGE", "two\nlines"))
    data = journal.encode(pairs)
    assert data.startswith("MAGNETD_FILE=bad? é.magnet\nPRIORITY=6\n".encode())
    assert decode(data) == [(key, value.replace("\udcff", "?")) for key, value in pairs]


def test_renderer_reconnects_when_journald_is_restarted(tmp_path: Path) -> None:
    path = tmp_path / "journal.sock"
    fallback = io.StringIO()
    renderer = journal.JournalRenderer(fallback=fallback, path=str(path))
    for round_ in ("first", "second"):  # the second server has a new socket at the same path
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
            server.bind(str(path))
            server.settimeout(5)
            with pytest.raises(structlog.DropEvent):
                renderer(None, "info", {"event": "x", "level": "info", "file": round_})
            assert ("MAGNETD_FILE", round_) in decode(server.recv(65536))
        path.unlink()
    assert fallback.getvalue() == ""


def test_an_entry_too_large_for_a_datagram_goes_to_the_fallback(tmp_path: Path) -> None:
    path = tmp_path / "journal.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        renderer = journal.JournalRenderer(fallback=io.StringIO(), path=str(path))
        line = renderer(None, "info", {"event": "x", "level": "info", "detail": "y" * (8 << 20)})
        assert json.loads(line)["detail"] == "y" * (8 << 20)
        with pytest.raises(structlog.DropEvent):  # the socket still serves the next, small one
            renderer(None, "info", {"event": "x", "level": "info", "file": "small"})
        assert ("MAGNETD_FILE", "small") in decode(server.recv(65536))


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


# -- every target: None left out, tracebacks, the logger's name --------------------------------

EARLY = logs.get("magnetd.test.early")  # made at import, before any setup(): bound lazily
TARGETS = ("console", "json", "journal")


class Sink:
    """Where one target's output lands: a text stream, or a journal datagram socket the test binds."""

    def __init__(self, target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.target = target
        self.stream = io.StringIO()
        self.server: socket.socket | None = None
        if target == "journal":
            path = tmp_path / "journal.sock"
            self.server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.server.bind(str(path))
            self.server.settimeout(5)
            monkeypatch.setenv("MAGNETD_JOURNAL_SOCKET", str(path))
        assert logs.setup(target, stream=self.stream) == target

    def text(self) -> str:
        """Console output as written (no colours: the stream is not a TTY)."""
        assert self.target == "console"
        return self.stream.getvalue()

    def json_line(self) -> dict[str, Any]:
        assert self.target == "json"
        lines = self.stream.getvalue().splitlines()
        assert len(lines) == 1, lines
        line: dict[str, Any] = json.loads(lines[0])
        return line

    def journal(self) -> list[tuple[str, str]]:
        """The fields of the one datagram sent, decoded from the native protocol."""
        assert self.server is not None
        pairs = decode(self.server.recv(1 << 20))
        assert self.stream.getvalue() == "", "the event went to the fallback, not the journal"
        return pairs

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


def decode(datagram: bytes) -> list[tuple[str, str]]:
    """journald's native protocol, read back: ``KEY=value\\n`` or ``KEY\\n<u64 length>value\\n``."""
    pairs, rest = [], datagram
    while rest:
        head, sep, tail = rest.partition(b"\n")
        assert sep, f"unterminated field: {rest!r}"
        if b"=" in head:
            key, _, value = head.partition(b"=")
            rest = tail
        else:
            key, (size,) = head, struct.unpack("<Q", tail[:8])
            value, rest = tail[8 : 8 + size], tail[8 + size :]
            assert rest[:1] == b"\n"
            rest = rest[1:]
        pairs.append((key.decode(), value.decode()))
    return pairs


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


@pytest.fixture(params=TARGETS)
def sink(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sink]:
    out = Sink(request.param, tmp_path, monkeypatch)
    yield out
    out.close()


def test_none_values_are_left_out_and_false_zero_empty_kept(sink: Sink) -> None:
    EARLY.info("file_sent", file="a.magnet", failed_lines=None, category="", paused=False, count=0)
    if sink.target == "console":
        text = sink.text()
        assert "failed_lines" not in text and "None" not in text
        assert "category=" in text and "paused=False" in text and "count=0" in text
    elif sink.target == "json":
        line = sink.json_line()
        assert "failed_lines" not in line
        assert line["category"] == "" and line["paused"] is False and line["count"] == 0
    else:
        fields = dict(sink.journal())
        assert "MAGNETD_FAILED_LINES" not in fields
        assert fields["MAGNETD_CATEGORY"] == "" and fields["MAGNETD_PAUSED"] == "false"
        assert fields["MAGNETD_COUNT"] == "0"


def test_journal_fallback_line_leaves_none_out_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAGNETD_JOURNAL_SOCKET", str(tmp_path / "nobody-listens.sock"))
    stream = io.StringIO()
    logs.setup("journal", stream=stream)
    EARLY.info("file_sent", file="a.magnet", failed_lines=None, count=0)
    line = json.loads(stream.getvalue())
    assert "failed_lines" not in line and line["count"] == 0 and line["event"] == "file_sent"


def _explode_in_a_named_frame(secret: str) -> None:
    raise RuntimeError(f"boom while using {secret}")


def test_an_unexpected_error_logs_its_full_traceback_masked(sink: Sink) -> None:
    secret = "tr4ceback-pw-" + secrets.token_hex(4)
    logs.register_secrets([secret])
    try:
        _explode_in_a_named_frame(secret)
    except RuntimeError as exc:
        EARLY.exception("loop_error", error=repr(exc), action="continuing in 1 s")
    if sink.target == "console":
        text = sink.text()
        assert "loop_error" in text and "action='continuing in 1 s'" in text
        assert "Traceback (most recent call last)" in text and "_explode_in_a_named_frame" in text
        assert "RuntimeError: boom while using ***" in text and secret not in text
    elif sink.target == "json":
        line = sink.json_line()
        assert line["level"] == "error" and line["error"].startswith("RuntimeError(")
        (error,) = line["exception"]
        assert error["exc_type"] == "RuntimeError" and error["exc_value"] == "boom while using ***"
        names = [frame["name"] for frame in error["frames"]]
        assert names[-1] == "_explode_in_a_named_frame", names
        assert all("locals" not in frame for frame in error["frames"]), "locals may hold secrets"
        assert secret not in json.dumps(line)
    else:
        pairs = sink.journal()
        fields = dict(pairs)
        assert fields["PRIORITY"] == "3" and "MAGNETD_EXC_INFO" not in fields
        traceback = fields["MAGNETD_TRACEBACK"]
        assert traceback.startswith("Traceback (most recent call last)")
        assert "_explode_in_a_named_frame" in traceback
        assert traceback.rstrip().endswith("RuntimeError: boom while using ***")
        # what `journalctl -u magnetd` prints is MESSAGE: the summary, then the traceback
        summary, _, rest = fields["MESSAGE"].partition("\n")
        assert summary.startswith("loop_error error=RuntimeError(")
        assert rest == traceback.rstrip("\n")
        assert all(secret not in value for _, value in pairs)


def test_every_event_names_its_logger(sink: Sink) -> None:
    EARLY.warning("files_held", files=5)
    if sink.target == "console":
        assert "[magnetd.test.early]" in sink.text()
    elif sink.target == "json":
        assert sink.json_line()["logger"] == "magnetd.test.early"
    else:
        assert ("MAGNETD_LOGGER", "magnetd.test.early") in sink.journal()


def test_loggers_follow_the_configuration_in_force_when_they_log() -> None:
    first, second = io.StringIO(), io.StringIO()
    unnamed = logs.get()
    logs.setup("json", stream=first)
    EARLY.info("one")
    unnamed.info("two")
    structlog.get_logger().info("three")
    logs.setup("json", "warning", stream=second)
    EARLY.info("filtered_out")
    EARLY.warning("four")
    seen = [(e["event"], e["logger"]) for e in map(json.loads, first.getvalue().splitlines())]
    assert seen == [("one", "magnetd.test.early"), ("two", "magnetd"), ("three", "magnetd")]
    assert [json.loads(line)["event"] for line in second.getvalue().splitlines()] == ["four"]


def test_scrub_masks_strings_inside_nested_values() -> None:
    logs.register_secrets(["n3sted-secret"])
    event = logs.scrub(None, "error", {"exception": [{"exc_value": "x n3sted-secret", "frames": []}]})
    assert event == {"exception": [{"exc_value": "x ***", "frames": []}]}


# -- the cheap hot path writes what structlog's own processors write -------------------------

JSON_LEAF = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
JSON_VALUE = st.recursive(
    JSON_LEAF, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4)
)


@given(st.integers(min_value=0, max_value=4_102_444_800 * 10**9))  # up to 2100
def test_iso_utc_is_datetimes_isoformat_with_z(now_ns: int) -> None:
    micros = now_ns // 1000
    expected = datetime.datetime.fromtimestamp(micros // 10**6, tz=datetime.UTC)
    expected = expected.replace(microsecond=micros % 10**6)
    assert clock.iso_utc(now_ns) == expected.isoformat().replace("+00:00", "Z")


def test_iso_utc_on_a_whole_second_has_no_fraction_and_the_cache_follows_the_second() -> None:
    second = 1_795_956_312 * 10**9
    assert clock.iso_utc(second) == "2026-11-29T12:45:12Z"
    assert clock.iso_utc(second + 999) == "2026-11-29T12:45:12Z"  # below a microsecond: cut
    assert clock.iso_utc(second + 1_000) == "2026-11-29T12:45:12.000001Z"
    assert clock.iso_utc(second + 10**9 + 5_000_000) == "2026-11-29T12:45:13.005000Z"
    assert clock.iso_utc(second - 1_000) == "2026-11-29T12:45:11.999999Z"


class Opaque:
    def __repr__(self) -> str:
        return "<Opaque ünïcode>"


def _strict(text: str) -> Any:
    """``text`` read as strict JSON: NaN and infinities are refused."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def _as_json_reads_it(event: Any, default: Any) -> Any:
    """What ``json.dumps`` writes of ``event``, read back with NaN and infinities as None."""
    return json.loads(json.dumps(event, default=default), parse_constant=lambda _: None)


@given(st.dictionaries(st.text(), JSON_VALUE | st.builds(Opaque), max_size=8))
def test_json_serializer_writes_the_same_data_as_json_dumps_in_strict_json(event: dict[str, Any]) -> None:
    default = structlog.processors.JSONRenderer()._dumps_kw["default"]
    line = logs.JSONSerializer()(event, default=default)  # integers past 64 bits go to json
    assert "\n" not in line
    assert _strict(line) == _as_json_reads_it(event, default)


@pytest.mark.parametrize(
    "event",
    [
        {"file": "not-utf8-\udcff.magnet"},  # os.fsdecode of a name that is not UTF-8
        {"big": 2**70},
        {1: "a key that is not text"},
        {"big": 2**70, "nan": [float("nan")], "inf": {"x": float("-inf")}},
    ],
)
def test_json_serializer_hands_what_orjson_refuses_to_json_and_stays_strict(event: dict[Any, Any]) -> None:
    default = structlog.processors.JSONRenderer()._dumps_kw["default"]
    line = logs.JSONSerializer()(event, default=default)
    assert line.isascii()  # json's escapes
    assert _strict(line) == _as_json_reads_it(event, default)


def test_json_serializer_hands_dataclasses_and_datetimes_to_default_like_json() -> None:
    @dataclasses.dataclass
    class Point:
        x: int

    default = structlog.processors.JSONRenderer()._dumps_kw["default"]
    when = datetime.datetime(2026, 11, 29, tzinfo=datetime.UTC)
    event = {"point": Point(1), "when": when}
    assert _strict(logs.JSONSerializer()(event, default=default)) == json.loads(
        json.dumps(event, default=default)
    )


EVENT_KEYS = st.sampled_from(["file", "Password", "sid", "detail", "count", "exception", "none"]) | st.text()
SCRUB_SECRET = "zq-scrub-s3cret"  # registered for good: unique to this test
EVENT_VALUES = JSON_VALUE | st.sampled_from([f"login {SCRUB_SECRET} failed", ["a", SCRUB_SECRET]])


@given(st.dictionaries(EVENT_KEYS, EVENT_VALUES, max_size=8))
def test_scrub_masks_every_secret_and_drops_only_none(event: dict[str, Any]) -> None:
    logs.register_secrets([SCRUB_SECRET])
    got = logs.scrub(None, "info", dict(event))
    secret_keys = {k for k in event if k.lower() in logs.SECRET_KEYS}
    kept = [k for k, v in event.items() if v is not None or k in secret_keys]
    assert list(got) == kept  # nothing else left out, the order kept
    assert all(got[k] == logs.REDACTED for k in secret_keys)
    assert SCRUB_SECRET not in json.dumps(got)
    for key in set(kept) - secret_keys:  # what holds no secret is left as it was
        if SCRUB_SECRET not in json.dumps(event[key]) and not _nested_secret_key(event[key]):
            expected = list(event[key]) if isinstance(event[key], tuple) else event[key]
            assert json.dumps(got[key]) == json.dumps(expected)  # NaN is not equal to itself


def _nested_secret_key(value: Any) -> bool:
    if isinstance(value, dict):
        return any(str(k).lower() in logs.SECRET_KEYS or _nested_secret_key(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_nested_secret_key(v) for v in value)
    return False


def test_a_secret_key_is_masked_even_when_none() -> None:
    assert logs.scrub(None, "info", {"password": None, "file": None, "n": 0}) == {"password": "***", "n": 0}


def test_a_json_line_has_the_fields_in_structlogs_order_and_an_iso_timestamp() -> None:
    stream = io.StringIO()
    logs.setup("json", stream=stream)
    EARLY.info("file_sent", file="ä.magnet", outcome="sent", infohash="ab" * 20, category=None)
    text = stream.getvalue()
    line = json.loads(text)
    assert list(line) == ["file", "outcome", "infohash", "event", "level", "logger", "timestamp"]
    assert text.startswith('{"file":"ä.magnet","outcome":"sent",') and text.endswith("}\n")  # compact UTF-8
    assert text.count("\n") == 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z", line["timestamp"])


def test_each_level_method_logs_at_its_level() -> None:
    out = io.StringIO()
    logs.setup("json", "debug", stream=out)
    EARLY.debug("d")
    EARLY.info("i")
    EARLY.warning("w")
    EARLY.error("e")
    try:
        raise ValueError("boom")
    except ValueError:
        EARLY.exception("x")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(e["event"], e["level"]) for e in lines] == [
        ("d", "debug"),
        ("i", "info"),
        ("w", "warning"),
        ("e", "error"),
        ("x", "error"),
    ]
    assert "ValueError" in json.dumps(lines[-1]["exception"])


def test_a_used_logger_follows_capture_logs_and_a_reset() -> None:
    first = io.StringIO()
    logs.setup("json", stream=first)
    EARLY.info("before")
    with capture_logs() as captured:
        EARLY.info("captured", n=1)
    EARLY.info("after")
    assert [e["event"] for e in captured] == ["captured"]
    assert [json.loads(line)["event"] for line in first.getvalue().splitlines()] == ["before", "after"]
    structlog.reset_defaults()
    with capture_logs() as captured:
        EARLY.warning("after_reset")
    assert [e["event"] for e in captured] == ["after_reset"]
    assert "after_reset" not in first.getvalue()


class _Writes(io.StringIO):
    """A stream that notes each write and flush (on an unbuffered stderr, a system call each)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def write(self, text: str) -> int:
        self.calls.append(text)
        return super().write(text)

    def flush(self) -> None:
        self.calls.append("<flush>")


def test_each_event_is_one_write_of_the_whole_line_then_a_flush() -> None:
    stream = _Writes()
    logs.setup("json", stream=stream)
    EARLY.info("file_sent", file="a.magnet")
    EARLY.warning("file_failed", file="b.magnet")
    lines, flushes = stream.calls[0::2], stream.calls[1::2]
    assert [json.loads(line)["event"] for line in lines] == ["file_sent", "file_failed"]
    assert all(line.endswith("}\n") and line.count("\n") == 1 for line in lines)
    assert flushes == ["<flush>", "<flush>"]


class Named:
    name = "magnetd.test.named"


@pytest.mark.parametrize("method", ["debug", "info", "warning", "warn", "error", "critical", "exception"])
@pytest.mark.parametrize("exc_info", [None, True, False])
@pytest.mark.parametrize("stamped", [True, False])
def test_the_one_processor_writes_what_structlogs_chain_writes(
    method: str, exc_info: bool | None, stamped: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    now_ns = 1_795_956_312_123_456_789
    monkeypatch.setattr(time, "time_ns", lambda: now_ns)
    stamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    chain: list[Any] = [
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,
        # TimeStamper puts the field in its place; its value (the clock now) is test_iso_utc_*'s
        *([lambda lg, m, e: {**stamper(lg, m, e), "timestamp": clock.iso_utc(now_ns)}] if stamped else []),
        structlog.dev.set_exc_info,
        logs.dict_tracebacks,
        logs.scrub,
    ]
    event: dict[str, Any] = {"file": "a.magnet", "password": "pw", "skipped": None, "event": "e"}
    if exc_info is not None:
        event["exc_info"] = exc_info
    try:
        raise ValueError("boom")
    except ValueError:
        expected: Any = dict(event)
        for processor in chain:
            expected = processor(Named(), method, expected)
        got = logs.preparer(logs.dict_tracebacks, stamped)(Named(), method, dict(event))
    assert list(got.items()) == list(expected.items())
    assert ("exception" in got) == (exc_info is True or (method == "exception" and exc_info is None))


def test_now_iso_is_whole_seconds_as_iso_writes_them(monkeypatch: pytest.MonkeyPatch) -> None:
    now_ns = 1_795_956_312_987_654_321
    monkeypatch.setattr(time, "time", lambda: now_ns / 10**9)
    moment = datetime.datetime.fromtimestamp(now_ns // 10**9, tz=datetime.UTC)
    assert clock.now_iso() == clock.iso(moment) == "2026-11-29T12:45:12Z"
    assert clock.parse_iso(clock.now_iso()) == moment
