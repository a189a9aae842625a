"""`magnetd check-config` names every problem with its key, and resolves paths next to the config."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

from magnetd import config
from magnetd.cli import main
from magnetd.model import ExitCode, StatusCode

GOOD = """
folders: {inbox: ./in, sent: ./out/sent, failed: ./out/failed}
instances:
  - {name: a, url: "http://127.0.0.1:1/", username: admin, password_env: MAGNETD_TEST_PW}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "magnetd.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_good_config_resolves_relative_paths(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, GOOD), {"MAGNETD_TEST_PW": "s3cret"})
    assert cfg.folders.inbox == tmp_path / "in"
    assert cfg.folders.state == tmp_path / "state"
    assert cfg.instances[0].password == "s3cret"
    assert "s3cret" not in repr(cfg)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
folders: {inbox: ./in, sent: ./in/sent}
probe_intervl: 3
probe_interval: 0
instances:
  - {name: a, url: "ftp://x", username: u, password: p, password_env: P}
  - {name: a, url: "http://x", username: u, requires_vpn: maybe}
""",
    )
    with pytest.raises(config.ConfigError) as caught:
        config.load(path, {})
    keys = {p.key for p in caught.value.problems}
    assert {
        "probe_intervl",
        "probe_interval",
        "folders.failed",
        "instances[0].url",
        "instances[0].password",
        "instances[1].name",
        "instances[1].requires_vpn",
        "instances[1].password",
    } <= keys
    typo = next(p for p in caught.value.problems if p.key == "probe_intervl")
    assert "probe_interval" in typo.hint


def test_nested_folders_and_missing_secrets(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
folders: {inbox: ./in, sent: ./in/sent, failed: ./failed}
instances:
  - {name: a, url: "http://x", username: u, password_file: ./nope}
  - {name: b, url: "http://x", username: u, password_env: NOT_SET_ANYWHERE}
""",
    )
    with pytest.raises(config.ConfigError) as caught:
        config.load(path, {})
    keys = {p.key for p in caught.value.problems}
    assert keys == {"folders.sent", "instances[0].password_file", "instances[1].password_env"}


def test_check_config_command_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write(tmp_path, GOOD.replace("probe", "x") + "probe_intervall: 5\n")
    assert main(["check-config", "--config", str(bad)]) == ExitCode.CONFIG
    err = capsys.readouterr().err
    assert "probe_intervall" in err and "did you mean 'probe_interval'" in err


def test_check_config_as_a_subprocess(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    ok = subprocess.run(
        [sys.executable, "-m", "magnetd", "check-config", "-c", str(path)],
        capture_output=True,
        text=True,
        env={"MAGNETD_TEST_PW": "x"},
    )
    assert ok.returncode == 0, ok.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "magnetd", "check-config", "-c", str(path)],
        capture_output=True,
        text=True,
        env={},
    )
    assert missing.returncode == ExitCode.CONFIG
    assert "instances[0].password_env" in missing.stderr


def test_example_config_is_valid(tmp_path: Path) -> None:
    example = Path(__file__).parents[2] / "magnetd.yaml.example"
    cfg = config.load(example, {"QBT_PASSWORD": "x"})
    assert cfg.folders.inbox == example.parent / "magnetd-data" / "inbox"


def test_secret_sources_and_warnings(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "qbt").write_text("from-credential\n")
    (tmp_path / "pw").write_text("from-file\n")
    path = write(
        tmp_path,
        """
folders: {inbox: ./in, sent: ./sent, failed: ./failed}
instances:
  - {name: a, url: "http://x", username: u, password_credential: qbt}
  - {name: b, url: "http://x", username: u, password_file: ./pw}
  - {name: c, url: "https://x", username: u, password: plain-text, verify_tls: false}
""",
    )
    path.chmod(0o644)
    cfg = config.load(path, {"CREDENTIALS_DIRECTORY": str(creds)})
    assert [i.password for i in cfg.instances] == ["from-credential", "from-file", "plain-text"]
    assert [i.password_source for i in cfg.instances] == ["password_credential", "password_file", "password"]
    assert any("verify_tls is false" in w for w in cfg.warnings)
    assert any("other users can read" in w for w in cfg.warnings)
    path.chmod(0o600)
    assert not any(
        "other users can read" in w for w in config.load(path, {"CREDENTIALS_DIRECTORY": str(creds)}).warnings
    )
    with pytest.raises(config.ConfigError) as caught:
        config.load(path, {})
    assert [p.key for p in caught.value.problems] == ["instances[0].password_credential"]


def test_folder_commands_do_not_need_the_password(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, GOOD)
    cfg = config.load(path, {}, secrets=False)
    assert cfg.instances[0].password == ""
    assert (
        main(["status", "--config", str(path)]) == StatusCode.NOT_RUNNING
    )  # no snapshot: says so, no secret
    assert "has not written a status" in capsys.readouterr().out
    assert main(["add", "--config", str(path), "a" * 40]) == 0
    assert len(list((tmp_path / "in").glob("*.magnet"))) == 1
    assert main(["run", "--config", str(path)]) == ExitCode.CONFIG


def test_retry_moves_failed_files_back_without_their_record(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    failed = tmp_path / "out" / "failed" / "books"
    failed.mkdir(parents=True)
    (failed / "x.magnet").write_text("a" * 40)
    (failed / "x.magnet.error.json").write_text("{}")
    assert main(["retry", "--config", str(path)]) == 0
    assert (tmp_path / "in" / "books" / "x.magnet").read_text() == "a" * 40
    assert not (failed / "x.magnet.error.json").exists()
    assert main(["retry", "--config", str(path), "nope.magnet"]) == 1


def test_version_is_the_installed_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"magnetd {importlib.metadata.version('magnetd')}"
