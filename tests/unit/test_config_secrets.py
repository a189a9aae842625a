"""Password sources that could never log in are config errors; secrets others can read are warned about.

And the rule checks only ever read what the schema accepted: no config, however
broken, makes ``load`` raise anything but :class:`ConfigError`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from magnetd import config, passwords
from magnetd.cli import main
from magnetd.model import ExitCode, StatusCode

FOLDERS = {"inbox": "./in", "sent": "./sent", "failed": "./failed"}


def write(tmp_path: Path, data: Any, mode: int = 0o600) -> Path:
    path = tmp_path / "magnetd.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    path.chmod(mode)
    return path


def one(**source: str) -> dict[str, Any]:
    """A config with one instance whose password comes from ``source``."""
    return {"folders": FOLDERS, "instances": [{"name": "a", "url": "http://x/", "username": "u", **source}]}


def problems(path: Path, environ: dict[str, str]) -> list[config.Problem]:
    with pytest.raises(config.ConfigError) as caught:
        config.load(path, environ)
    return list(caught.value.problems)


def test_unset_variable_names_the_key_and_how_to_set_it(tmp_path: Path) -> None:
    [problem] = problems(write(tmp_path, one(password_env="QBT_PW")), {})
    assert problem.key == "instances[0].password_env"
    assert problem.message == "environment variable QBT_PW is not set"
    assert "export" in problem.hint and "EnvironmentFile=" in problem.hint


@pytest.mark.parametrize(
    ("source", "setup", "key", "message"),
    [
        ("password_env", {"env": ""}, "password_env", "environment variable QBT_PW is empty"),
        ("password_file", {"file": ""}, "password_file", "pw is empty"),
        ("password_file", {"file": "\n"}, "password_file", "pw is empty"),
        ("password_credential", {"credential": ""}, "password_credential", "credential qbt ("),
    ],
)
def test_empty_sources_are_errors(
    tmp_path: Path, source: str, setup: dict[str, str], key: str, message: str
) -> None:
    environ: dict[str, str] = {}
    if "env" in setup:
        environ["QBT_PW"] = setup["env"]
        value = "QBT_PW"
    elif "file" in setup:
        (tmp_path / "pw").write_text(setup["file"])
        value = "./pw"
    else:
        (tmp_path / "creds").mkdir()
        (tmp_path / "creds" / "qbt").write_text(setup["credential"])
        environ["CREDENTIALS_DIRECTORY"] = str(tmp_path / "creds")
        value = "qbt"
    [problem] = problems(write(tmp_path, one(**{source: value})), environ)
    assert problem.key == f"instances[0].{key}"
    assert message in problem.message and problem.message.endswith("is empty: magnetd could never log in")
    assert problem.hint


def test_empty_plain_password_is_an_error(tmp_path: Path) -> None:
    [problem] = problems(write(tmp_path, one(password="")), {})
    assert (problem.key, problem.message) == (
        "instances[0].password",
        "the password is empty: magnetd could never log in",
    )
    assert "password_file" in problem.hint


def test_run_refuses_every_empty_source_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pw").write_text("")
    data = one(password_env="MAGNETD_EMPTY_PW")
    data["instances"].append({"name": "b", "url": "http://y/", "username": "u", "password_file": "./pw"})
    path = write(tmp_path, data)
    monkeypatch.setenv("MAGNETD_EMPTY_PW", "")
    assert main(["run", "--config", str(path)]) == ExitCode.CONFIG
    err = capsys.readouterr().err
    assert "2 problem(s)" in err
    assert "instances[0].password_env: environment variable MAGNETD_EMPTY_PW is empty" in err
    assert f"instances[1].password_file: {tmp_path / 'pw'} is empty" in err
    assert main(["check-config", "--config", str(path)]) == ExitCode.CONFIG
    assert main(["status", "--config", str(path)]) == StatusCode.NOT_RUNNING  # folder commands: no password


# --- secrets other users can read ------------------------------------------------------


def test_world_readable_config_with_a_password_is_warned_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, one(password="plain-pw"), mode=0o644)
    [warning] = config.load(path, {}).warnings
    assert warning == (
        f"{path} holds a secret (instances[0].password) and other users can read it (mode 644):"
        f" chmod 600 {path}, or use password_file, password_env or a systemd credential (password_credential)"
    )
    assert "plain-pw" not in warning
    assert main(["check-config", "--config", str(path)]) == ExitCode.OK
    assert f"warning: {warning}" in capsys.readouterr().out
    path.chmod(0o640)
    assert "mode 640" in config.load(path, {}).warnings[0]
    path.chmod(0o600)
    assert config.load(path, {}).warnings == ()


def test_readable_config_without_a_literal_secret_is_fine(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("from-file")
    (tmp_path / "pw").chmod(0o600)
    assert config.load(write(tmp_path, one(password_file="./pw"), mode=0o644), {}).warnings == ()


def test_readable_password_file_is_warned_about(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("from-file")
    (tmp_path / "pw").chmod(0o604)
    [warning] = config.load(write(tmp_path, one(password_file="./pw")), {}).warnings
    pw = tmp_path / "pw"
    assert warning == f"password_file {pw} can be read by other users (mode 604): chmod 600 {pw}"


def test_no_mode_check_on_windows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, one(password="plain-pw"), mode=0o644)
    monkeypatch.setattr(sys, "platform", "win32")
    assert config.load(path, {}).warnings == ()


def test_literal_secret_keys_are_one_list(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = {"instances": [{"password": "p"}, {"password": ""}], "http": {"token": "t", "api_key": "x"}}
    assert list(passwords.literal_secrets(raw)) == ["instances[0].password", "http.token"]
    monkeypatch.setattr(passwords, "LITERAL_SECRETS", frozenset({"password", "token", "api_key"}))
    assert list(passwords.literal_secrets(raw)) == ["instances[0].password", "http.token", "http.api_key"]


# --- rule checks read only what the schema accepted --------------------------------------


def test_wrong_types_are_schema_problems_only(tmp_path: Path) -> None:
    data = {
        "folders": {"inbox": 3, "sent": [], "failed": {}},
        "instances": [{"name": 5, "url": 3, "username": [], "password_file": 7, "verify_tls": 5}],
    }
    found = problems(write(tmp_path, data), {})
    assert {p.key for p in found} == {
        "folders.inbox",
        "folders.sent",
        "folders.failed",
        "instances[0].name",
        "instances[0].url",
        "instances[0].username",
        "instances[0].password_file",
        "instances[0].verify_tls",
    }
    assert all("not of type" in p.message for p in found)


@pytest.mark.parametrize("instances", ["not-a-list", [], [5], [None]])
def test_instances_of_the_wrong_shape(tmp_path: Path, instances: Any) -> None:
    found = problems(write(tmp_path, {"folders": FOLDERS, "instances": instances}), {})
    assert found and all(p.key.startswith("instances") for p in found)


def test_each_missing_key_is_named_once(tmp_path: Path) -> None:
    found = problems(write(tmp_path, {"folders": {}, "instances": [{"password": "p"}]}), {})
    assert [(p.key, p.message) for p in found] == [
        ("folders.inbox", "is required but missing"),
        ("folders.sent", "is required but missing"),
        ("folders.failed", "is required but missing"),
        ("instances[0].name", "is required but missing"),
        ("instances[0].url", "is required but missing"),
        ("instances[0].username", "is required but missing"),
    ]
    assert found[0].hint  # the schema's description of the missing key


def test_unknown_keys_of_mixed_types(tmp_path: Path) -> None:
    path = tmp_path / "magnetd.yaml"
    path.write_text(
        "folders: {inbox: a, sent: b, failed: c}\n"
        "instances: [{name: a, url: 'http://x', username: u, password: p}]\n"
        "1: x\nzz: 2\n"
    )
    path.chmod(0o600)
    assert sorted(p.key for p in problems(path, {})) == ["[1]", "zz"]


def test_unknown_home_in_a_password_file_is_a_problem(tmp_path: Path) -> None:
    [problem] = problems(write(tmp_path, one(password_file="~no-such-user-here/pw")), {})
    assert problem.key == "instances[0].password_file" and "cannot read" in problem.message


SCHEMA_KEYS = [
    "folders", "inbox", "sent", "failed", "state", "instances", "name", "url", "username", "password",
    "password_file", "password_env", "password_credential", "verify_tls", "requires_vpn", "timeout", "vpn",
    "gateway", "count", "defaults", "category", "savepath", "tags", "paused", "limits", "batch_size",
    "max_file_bytes", "retention", "sent_days", "watch", "polling", "rescan_interval", "settle_seconds",
    "probe_interval",
]  # fmt: skip
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-5, 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["", "x", "./pw", "http://127.0.0.1:1/", "~", "a" * 70, "QBT_PW", "auto"])
)
trees = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(SCHEMA_KEYS) | st.integers(0, 2), children, max_size=5)
    ),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(SCHEMA_KEYS), trees, max_size=6))
def test_any_config_loads_or_says_why(tmp_path: Path, raw: dict[str, Any]) -> None:
    path = tmp_path / "magnetd.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    (tmp_path / "pw").write_text("from-file")
    environ = {"QBT_PW": "from-env", "CREDENTIALS_DIRECTORY": str(tmp_path)}
    try:
        loaded = config.load(path, environ)
    except config.ConfigError as exc:
        assert exc.problems
    else:
        assert loaded.instances and all(i.password for i in loaded.instances)


INSTANCE_KEYS = [
    "name",
    "url",
    "username",
    "password",
    "password_file",
    "password_env",
    "verify_tls",
    "timeout",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.dictionaries(st.sampled_from(INSTANCE_KEYS), trees, max_size=3),
    st.dictionaries(st.sampled_from(["inbox", "sent", "failed", "state"]), trees, max_size=2),
)
def test_a_good_config_with_some_keys_spoiled_loads_or_says_why(
    tmp_path: Path, spoiled: dict[str, Any], folders: dict[str, Any]
) -> None:
    raw = one(password_file="./pw")
    raw["instances"][0].update(spoiled)
    raw["instances"].append({"name": "b", "url": "http://y/", "username": "u", "password_env": "QBT_PW"})
    raw["folders"] = {**FOLDERS, **folders}
    (tmp_path / "pw").write_text("from-file")
    path = write(tmp_path, raw)
    try:
        loaded = config.load(path, {"QBT_PW": "from-env"})
    except config.ConfigError as exc:
        assert exc.problems
    else:
        assert [i.name for i in loaded.instances][1:] == ["b"]
