"""Targets against real receivers: a local HTTP server, Apprise's json://, a real command."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from magnetd import __version__
from magnetd.telemetry.events import Event, EventName
from magnetd.telemetry.targets import (
    NOTIFY_TYPES,
    AppriseTarget,
    CommandTarget,
    Outcome,
    TargetSpec,
    WebhookTarget,
    apprise_problem,
    build,
)
from tests.receiver import Receiver

SECRET = "s3cr3t-T0KEN-value"


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def vpn_down() -> Event:
    return Event(EventName.VPN_DOWN, "VPN down", "gateway 10.8.0.1 does not answer", {"gateway": "10.8.0.1"})


def webhook(url: str, timeout: float | None = None) -> WebhookTarget:
    spec = TargetSpec("hook", None, webhook=url, headers={"X-Token": SECRET}, timeout=timeout)
    return WebhookTarget(spec)


def test_spec_needs_exactly_one_kind_and_hides_its_secrets() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        TargetSpec("both", None, apprise="json://x", webhook="http://x")
    with pytest.raises(ValueError, match="exactly one"):
        TargetSpec("none", None)
    spec = TargetSpec("hook", None, webhook=f"http://x/?token={SECRET}", headers={"X-Token": SECRET})
    assert spec.kind == "webhook"
    assert SECRET not in repr(spec) and SECRET not in repr(build(spec))
    command = TargetSpec("cmd", None, command=("notify", f"--token={SECRET}"))
    assert command.kind == "command" and SECRET not in repr(command)


def test_webhook_posts_the_event_body_with_its_headers() -> None:
    event = vpn_down()
    with Receiver() as receiver:
        result = webhook(receiver.url).deliver(event)
        [request] = receiver.wait_for(1)
    assert result.outcome == Outcome.DELIVERED
    assert request.path == "/hook"
    assert request.json() == json.loads(json.dumps(event.body()))
    assert request.json()["event"] == "vpn_down" and request.json()["id"] == event.id
    assert request.headers["X-Magnetd-Event"] == "vpn_down"
    assert request.headers["X-Token"] == SECRET
    assert request.headers["User-Agent"] == f"magnetd/{__version__}"
    assert request.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        *[(200, Outcome.DELIVERED), (204, Outcome.DELIVERED), (500, Outcome.RETRY), (503, Outcome.RETRY)],
        *[(400, Outcome.FAILED), (401, Outcome.FAILED), (404, Outcome.FAILED), (429, Outcome.FAILED)],
    ],
)
def test_webhook_status_codes(code: int, outcome: Outcome) -> None:
    with Receiver(default=code) as receiver:
        result = webhook(receiver.url + f"?token={SECRET}").deliver(vpn_down())
    assert result.outcome == outcome
    assert result.detail == f"HTTP {code}"


def test_webhook_does_not_follow_a_redirect() -> None:
    with Receiver() as elsewhere, Receiver(default=302, location=elsewhere.url) as receiver:
        result = webhook(receiver.url).deliver(vpn_down())
        receiver.wait_for(1)
        time.sleep(0.2)
        assert elsewhere.requests == []
    assert result.outcome == Outcome.FAILED and "redirects are not followed" in result.detail


def test_webhook_connection_refused_and_timeout_are_retried_without_the_url() -> None:
    refused = webhook(f"http://127.0.0.1:{closed_port()}/{SECRET}?token={SECRET}").deliver(vpn_down())
    assert refused.outcome == Outcome.RETRY
    assert refused.detail == "connection failed: Connection refused"
    with Receiver(hold=10) as receiver:
        started = time.monotonic()
        slow = webhook(f"{receiver.url}?token={SECRET}", timeout=0.3).deliver(vpn_down())
        assert time.monotonic() - started < 3
    assert slow.outcome == Outcome.RETRY and slow.detail == "no answer within 0.3 s"
    bad = webhook("not-a-url").deliver(vpn_down())
    assert bad.outcome == Outcome.FAILED and bad.detail == "cannot send: MissingSchema"


def test_apprise_json_reaches_the_receiver_with_title_message_and_type() -> None:
    event = vpn_down()
    with Receiver() as receiver:
        target = build(TargetSpec("phone", None, apprise=f"json://127.0.0.1:{receiver.port}/notify"))
        assert isinstance(target, AppriseTarget)
        result = target.deliver(event)
        [request] = receiver.wait_for(1)
    assert result.outcome == Outcome.DELIVERED
    assert request.path == "/notify"
    payload = request.json()
    assert payload["title"] == "VPN down" and payload["message"] == event.message
    assert payload["type"] == "failure" and "version" in payload


@pytest.mark.parametrize("answer", ["refused", "500"])
def test_apprise_failure_is_retried_and_its_detail_has_no_url(answer: str) -> None:
    with Receiver(default=500) as receiver:
        port = closed_port() if answer == "refused" else receiver.port
        url = f"json://127.0.0.1:{port}/{SECRET}?token={SECRET}"
        result = build(TargetSpec("phone", None, apprise=url)).deliver(vpn_down())
    assert result.outcome == Outcome.RETRY
    assert result.detail.startswith("apprise could not send")
    assert SECRET not in result.detail and str(port) not in result.detail


def test_apprise_problem_accepts_one_service_and_never_repeats_the_url() -> None:
    assert apprise_problem("json://127.0.0.1:9/x") is None
    unknown = apprise_problem(f"nosuchservice://{SECRET}@host")
    assert unknown and SECRET not in unknown
    two = apprise_problem(f"json://127.0.0.1/{SECRET} json://127.0.0.2/{SECRET}")
    assert two == "the URL names 2 services; give one Apprise URL per target"
    with pytest.raises(ValueError, match="phone"):
        build(TargetSpec("phone", None, apprise=f"nosuchservice://{SECRET}"))


def test_every_event_has_an_apprise_type() -> None:
    assert set(NOTIFY_TYPES) == set(EventName)
    assert set(NOTIFY_TYPES.values()) == {"info", "success", "warning", "failure"}
    assert NOTIFY_TYPES[EventName.DRAINED] == "success" and NOTIFY_TYPES[EventName.HOLDING] == "warning"


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60, check=False
    )


def test_apprise_is_imported_only_when_an_apprise_target_is_built(tmp_path: Path) -> None:
    result = run_python(
        f"""
        import sys
        from magnetd import logs
        logs.setup("json")
        from magnetd.telemetry.events import Event, EventName
        from magnetd.telemetry.postman import Postman
        from magnetd.telemetry.targets import TargetSpec
        specs = [
            TargetSpec("hook", None, webhook="http://127.0.0.1:{closed_port()}/x"),
            TargetSpec("cmd", None, command=("true",)),
        ]
        postman = Postman(specs, backoff=(0.0,))
        postman.post(Event(EventName.VPN_DOWN, "t", "m"))
        print(sorted(postman.deliver_now(Event(EventName.TEST, "t", "m"), timeout=10)))
        postman.close(5)
        print("apprise" in sys.modules)
        Postman([TargetSpec("phone", None, apprise="json://127.0.0.1/x")]).close()
        print("apprise" in sys.modules)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:3] == ["['cmd', 'hook']", "False", "True"]


def test_apprise_log_lines_never_reach_magnetd_output() -> None:
    """Apprise logs its URL at debug: even with a root handler at DEBUG, nothing of it shows."""
    result = run_python(
        f"""
        import logging
        logging.basicConfig(level=logging.DEBUG)
        from magnetd import logs
        logs.setup("json", level="debug")
        from magnetd.telemetry.events import Event, EventName
        from magnetd.telemetry.postman import Postman
        from magnetd.telemetry.targets import TargetSpec
        url = "json://127.0.0.1:{closed_port()}/{SECRET}?token={SECRET}"
        postman = Postman([TargetSpec("phone", None, apprise=url)], tries=2, backoff=(0.0,))
        print(postman.deliver_now(Event(EventName.TEST, "t", "m"), timeout=20)["phone"])
        """
    )
    assert result.returncode == 0, result.stderr
    assert "notify_failed" in result.stderr and "apprise could not send" in result.stdout
    assert SECRET not in result.stdout + result.stderr
    assert "apprise" not in result.stderr.replace("apprise could not send", "")


def script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "on-event"
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return path


def test_command_gets_the_event_on_stdin_and_in_its_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAGNETD_TEST_INHERITED", "yes")
    out = tmp_path / "got.json"
    path = script(
        tmp_path,
        f"""
        import json, os, sys
        env = {{k: v for k, v in os.environ.items() if k.startswith("MAGNETD_")}}
        got = {{"stdin": json.load(sys.stdin), "env": env, "args": sys.argv[1:]}}
        json.dump(got, open({str(out)!r}, "w"))
        """,
    )
    event = Event(EventName.FILE_FAILED, "1 file failed", "a.magnet: bad link\nb.magnet: gone", {"files": 2})
    result = build(TargetSpec("script", None, command=(str(path), "--flag"))).deliver(event)
    assert result.outcome == Outcome.DELIVERED and result.detail == "exit 0"
    got = json.loads(out.read_text())
    assert got["stdin"] == json.loads(json.dumps(event.body()))
    assert got["args"] == ["--flag"]
    assert got["env"]["MAGNETD_EVENT"] == "file_failed"
    assert got["env"]["MAGNETD_TITLE"] == "1 file failed"
    assert got["env"]["MAGNETD_MESSAGE"] == "a.magnet: bad link\nb.magnet: gone"
    assert got["env"]["MAGNETD_TEST_INHERITED"] == "yes"


def test_command_exit_code_fails_with_an_excerpt_of_stderr(tmp_path: Path) -> None:
    path = script(tmp_path, 'import sys\nsys.stderr.write("x" * 5000 + "\\nreal   reason\\n")\nsys.exit(3)\n')
    result = CommandTarget(TargetSpec("script", None, command=(str(path), SECRET))).deliver(vpn_down())
    assert result.outcome == Outcome.FAILED
    assert result.detail.startswith("exit 3: …x") and result.detail.endswith("x real reason")
    assert len(result.detail) < 220 and SECRET not in result.detail


def test_command_that_cannot_start_fails_without_its_arguments(tmp_path: Path) -> None:
    spec = TargetSpec("script", None, command=(str(tmp_path / "missing"), SECRET))
    result = build(spec).deliver(vpn_down())
    assert result.outcome == Outcome.FAILED and result.detail == "cannot start: No such file or directory"
    (tmp_path / "not-executable").write_text("#!/bin/sh\n")
    result = build(TargetSpec("script", None, command=(str(tmp_path / "not-executable"),))).deliver(
        vpn_down()
    )
    assert result.outcome == Outcome.FAILED and result.detail == "cannot start: Permission denied"


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_a_hung_command_is_killed_with_its_children_and_retried(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    path = tmp_path / "hang"
    path.write_text(f"#!/bin/sh\nsleep 60 &\necho $! > {pidfile}\nwait\n")
    path.chmod(0o755)
    started = time.monotonic()
    result = build(TargetSpec("script", None, command=(str(path),), timeout=0.5)).deliver(vpn_down())
    assert time.monotonic() - started < 5, "the grandchild holding the pipes was killed too"
    assert result.outcome == Outcome.RETRY and result.detail == "no exit within 0.5 s: killed"
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)
