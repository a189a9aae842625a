"""The Windows service's logic, on Linux: fake SCM, fake Supervisor, fake pywin32 modules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from magnetd import config
from magnetd.service import winservice
from magnetd.service.supervisor import Supervisor
from magnetd.service.systemd import Notifier
from magnetd.service.winservice import (
    CONTROL_INTERROGATE,
    CONTROL_PARAMCHANGE,
    CONTROL_SHUTDOWN,
    CONTROL_STOP,
    ERROR_CALL_NOT_IMPLEMENTED,
    ERROR_SERVICE_SPECIFIC_ERROR,
    NO_ERROR,
    SERVICE_RUNNING,
    SERVICE_START_PENDING,
    SERVICE_STOP_PENDING,
    SERVICE_STOPPED,
    ServiceCore,
)
from tests.daemon import wait_for

ENV = {"MAGNETD_TEST_PW": "s3cret-pw"}
GOOD = """
folders: {inbox: ./in, sent: ./out/sent, failed: ./out/failed, state: ./state}
probe_interval: 0.2
instances:
  - {name: a, url: "http://127.0.0.1:1/", username: admin, password_env: MAGNETD_TEST_PW, timeout: 0.5}
"""
CONFIG_ERROR_CODE = 0x20000000 | 78


class FakeScm:
    def __init__(self) -> None:
        self.reports: list[tuple[int, int, int]] = []
        self.errors: list[str] = []
        self.infos: list[str] = []

    def report(self, state: int, wait_hint_ms: int = 0, exit_code: int = 0) -> None:
        self.reports.append((state, wait_hint_ms, exit_code))

    def log_error(self, text: str) -> None:
        self.errors.append(text)

    def log_info(self, text: str) -> None:
        self.infos.append(text)

    def states(self) -> list[int]:
        return [state for state, _, _ in self.reports]


class FakeSupervisor:
    """Runs until request_stop (or returns ``code`` at once when ``block`` is False)."""

    made: list[FakeSupervisor] = []

    def __init__(self, cfg: config.Config, code: int = 0, block: bool = True) -> None:
        self.cfg, self.code, self.block = cfg, code, block
        self.calls: list[str] = []
        self.stopped = threading.Event()
        FakeSupervisor.made.append(self)

    def request_stop(self) -> None:
        self.calls.append("stop")
        self.stopped.set()

    def request_reload(self) -> None:
        self.calls.append("reload")

    def run(self) -> int:
        structlog.get_logger("magnetd").info("fake_supervisor_running", password="s3cret-pw")
        if self.block:
            assert self.stopped.wait(10), "never asked to stop"
        return self.code


def write_config(tmp_path: Path, text: str = GOOD) -> Path:
    path = tmp_path / "magnetd.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    FakeSupervisor.made.clear()
    yield
    structlog.reset_defaults()


def make_core(path: Path | None, scm: FakeScm, factory: Any = FakeSupervisor) -> ServiceCore:
    return ServiceCore(scm, lambda: str(path) if path else None, factory, environ=ENV)


def run_in_thread(core: ServiceCore) -> tuple[threading.Thread, list[int]]:
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(core.run()), daemon=True)
    thread.start()
    return thread, result


# -- pure logic ---------------------------------------------------------------------------


def test_control_codes_map_to_actions() -> None:
    assert winservice.control_action(CONTROL_STOP) == "stop"
    assert winservice.control_action(CONTROL_SHUTDOWN) == "stop"
    assert winservice.control_action(CONTROL_PARAMCHANGE) == "reload"
    assert winservice.control_action(CONTROL_INTERROGATE) == "interrogate"
    assert winservice.control_action(2) == "unsupported"  # PAUSE: not accepted
    assert winservice.ACCEPTED_CONTROLS == 0x1 | 0x4 | 0x8  # STOP, SHUTDOWN, PARAMCHANGE


def test_config_path_is_the_stored_one_else_programdata() -> None:
    assert winservice.resolve_config_path(r"D:\magnetd\my.yaml", {}) == r"D:\magnetd\my.yaml"
    assert (
        winservice.resolve_config_path("  ", {"PROGRAMDATA": r"E:\Data"}) == r"E:\Data\magnetd\magnetd.yaml"
    )
    assert winservice.resolve_config_path(None, {}) == r"C:\ProgramData\magnetd\magnetd.yaml"


def test_install_options_and_parameters(tmp_path: Path) -> None:
    options = winservice.install_options("auto")
    assert options == {
        "pythonClassString": "magnetd.service.winservice.MagnetdService",
        "serviceName": "magnetd",
        "displayName": "magnetd \u2013 magnet links to qBittorrent",
        "description": winservice.DESCRIPTION,
        "startType": 2,  # SERVICE_AUTO_START
    }
    assert winservice.install_options("manual")["startType"] == 3  # SERVICE_DEMAND_START
    with pytest.raises(ValueError, match="startup"):
        winservice.install_options("boot")
    assert winservice.service_parameters(None) == {"ConfigPath": ""}
    assert winservice.service_parameters(Path("rel.yaml")) == {"ConfigPath": str(Path("rel.yaml").absolute())}


def test_exit_codes_and_status_lines() -> None:
    assert winservice.service_exit_code(0) == 0
    assert winservice.service_exit_code(78) == CONFIG_ERROR_CODE
    stopped = (16, SERVICE_STOPPED, 0, ERROR_SERVICE_SPECIFIC_ERROR, CONFIG_ERROR_CODE, 0, 0)
    assert "config is invalid" in winservice.describe_status(stopped)
    crashed = (16, SERVICE_STOPPED, 0, ERROR_SERVICE_SPECIFIC_ERROR, 0x20000001, 0, 0)
    assert "failed with code 1" in winservice.describe_status(crashed)
    assert (
        winservice.describe_status((16, SERVICE_STOPPED, 0, 1067, 0, 0, 0)) == "stopped: Windows error 1067"
    )
    assert winservice.describe_status((16, SERVICE_RUNNING, 13, 0, 0, 0, 0)) == "running"
    assert winservice.explain_error(5, "Access is denied.") == (
        "Access is denied (Windows error 5); run it from an administrator (elevated) prompt"
    )
    assert winservice.explain_error(1234, "Odd. ") == "Odd (Windows error 1234)"


def test_module_imports_without_pywin32() -> None:
    code = (
        "import sys, magnetd.service.winservice;"
        " assert not {'win32service', 'servicemanager'} & set(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(AttributeError):
        _ = winservice.NoSuchThing


def test_notifier_reloads_without_clock_gettime(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(time, "clock_gettime_ns")  # as on Windows
    notifier = Notifier(environ={})
    notifier.reloading()
    notifier.ready("ok")
    assert not notifier.enabled


# -- ServiceCore --------------------------------------------------------------------------


def test_controls_reach_the_supervisor(tmp_path: Path) -> None:
    scm = FakeScm()
    core = make_core(write_config(tmp_path), scm)
    thread, result = run_in_thread(core)
    wait_for(lambda: SERVICE_RUNNING in scm.states())
    supervisor = FakeSupervisor.made[0]
    assert core.control(CONTROL_PARAMCHANGE) == NO_ERROR
    assert core.control(CONTROL_INTERROGATE) == NO_ERROR
    assert core.control(2) == ERROR_CALL_NOT_IMPLEMENTED
    assert supervisor.calls == ["reload"]
    assert core.control(CONTROL_STOP) == NO_ERROR
    thread.join(5)
    assert result == [0]
    assert supervisor.calls == ["reload", "stop"]
    assert (SERVICE_STOP_PENDING, winservice.STOP_WAIT_HINT_MS, 0) in scm.reports
    assert scm.errors == [] and "magnetd started" in scm.infos[0]


def test_shutdown_stops_like_stop(tmp_path: Path) -> None:
    scm = FakeScm()
    core = make_core(write_config(tmp_path), scm)
    thread, result = run_in_thread(core)
    wait_for(lambda: SERVICE_RUNNING in scm.states())
    core.control(CONTROL_SHUTDOWN)
    thread.join(5)
    assert result == [0] and FakeSupervisor.made[0].calls == ["stop"]


def test_config_error_logs_every_problem_and_exits_with_code(tmp_path: Path) -> None:
    bad = GOOD.replace("probe_interval: 0.2", "probe_intervl: 3").replace("MAGNETD_TEST_PW", "NOT_SET_PW")
    scm = FakeScm()
    core = make_core(write_config(tmp_path, bad), scm)
    assert core.run() == CONFIG_ERROR_CODE
    assert len(scm.errors) == 1
    assert "probe_intervl: unknown key" in scm.errors[0]
    assert "NOT_SET_PW is not set" in scm.errors[0]
    assert SERVICE_RUNNING not in scm.states()
    assert FakeSupervisor.made == []


def test_missing_default_config_is_a_config_error(tmp_path: Path) -> None:
    scm = FakeScm()
    core = ServiceCore(scm, lambda: None, FakeSupervisor, environ={"PROGRAMDATA": str(tmp_path)})
    assert core.run() == CONFIG_ERROR_CODE
    assert "config file not found" in scm.errors[0]


def test_unwritable_log_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("a file, not a folder", encoding="utf-8")
    scm = FakeScm()
    assert make_core(write_config(tmp_path), scm).run() == 0x20000000 | 1
    assert "magnetd cannot start" in scm.errors[0]


def test_logs_go_to_a_json_file_in_the_state_folder(tmp_path: Path) -> None:
    scm = FakeScm()
    core = make_core(write_config(tmp_path), scm, lambda cfg: FakeSupervisor(cfg, code=3, block=False))
    assert core.run() == 0x20000000 | 3
    assert core.log_file is not None
    core.log_file.close()
    text = (tmp_path / "state" / "magnetd.log").read_text(encoding="utf-8")
    assert "fake_supervisor_running" in [json.loads(line)["event"] for line in text.splitlines()]
    assert "s3cret-pw" not in text


def test_stop_before_the_supervisor_exists_still_stops_it(tmp_path: Path) -> None:
    scm = FakeScm()
    core = make_core(write_config(tmp_path), scm)
    core.control(CONTROL_STOP)
    assert core.run() == 0
    assert FakeSupervisor.made[0].calls == ["stop"]


def test_stop_pending_is_renewed_until_run_ends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(winservice, "STOP_WAIT_HINT_MS", 30)  # renew every 10 ms
    release = threading.Event()

    class SlowToStop(FakeSupervisor):
        def run(self) -> int:
            self.stopped.wait(10)
            release.wait(10)
            return 0

    scm = FakeScm()
    core = make_core(write_config(tmp_path), scm, SlowToStop)
    thread, _ = run_in_thread(core)
    wait_for(lambda: SERVICE_RUNNING in scm.states())
    core.control(CONTROL_STOP)
    wait_for(lambda: scm.states().count(SERVICE_STOP_PENDING) >= 4)
    release.set()
    thread.join(5)
    time.sleep(0.05)
    count = scm.states().count(SERVICE_STOP_PENDING)
    time.sleep(0.05)
    assert scm.states().count(SERVICE_STOP_PENDING) == count


def test_real_supervisor_runs_reloads_and_stops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real Supervisor under ServiceCore: started, reloaded and stopped by SCM controls."""
    monkeypatch.setenv("MAGNETD_TEST_PW", ENV["MAGNETD_TEST_PW"])  # the reload reads os.environ
    monkeypatch.delattr(time, "clock_gettime_ns")  # as on Windows
    log = tmp_path / "state" / "magnetd.log"
    scm = FakeScm()
    core = ServiceCore(scm, lambda: str(write_config(tmp_path)), environ=ENV)
    thread, result = run_in_thread(core)
    wait_for(lambda: log.exists() and '"daemon_started"' in log.read_text(encoding="utf-8"), 10)
    assert isinstance(core.supervisor, Supervisor)
    assert not core.supervisor.notifier.enabled
    core.control(CONTROL_PARAMCHANGE)
    wait_for(lambda: '"config_reloaded"' in log.read_text(encoding="utf-8"), 10)
    core.control(CONTROL_STOP)
    thread.join(15)
    assert result == [0]
    assert "daemon_stopped" in [
        json.loads(line)["event"] for line in log.read_text(encoding="utf-8").splitlines()
    ]


# -- pywin32, faked -----------------------------------------------------------------------


class FakeModule(types.ModuleType):
    """A stand-in for a pywin32 module: the test gives it whatever attributes it needs."""

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)


class Win32Error(Exception):
    def __init__(self, winerror: int, funcname: str, strerror: str) -> None:
        super().__init__(winerror, funcname, strerror)
        self.winerror, self.funcname, self.strerror = winerror, funcname, strerror


@pytest.fixture
def pywin32(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.SimpleNamespace]:
    """Fake win32service, win32serviceutil and servicemanager in sys.modules."""
    fake = types.SimpleNamespace(calls=[], options={}, events=[], statuses=[], fail={})

    class ServiceFramework:
        _svc_name_: str  # set by the subclass

        def __init__(self, args: list[str]) -> None:
            self.args = args
            fake.events.append(("SetEventSourceName", self._svc_name_))

        def ReportServiceStatus(
            self, state: int, waitHint: int = 5000, win32ExitCode: int = 0, svcExitCode: int = 0
        ) -> None:
            fake.statuses.append((state, waitHint, win32ExitCode, svcExitCode))

    def call(name: str, result: Any = None) -> Any:
        def record(*args: Any, **kwargs: Any) -> Any:
            fake.calls.append((name, args, kwargs))
            if name in fake.fail:
                raise fake.fail.pop(name)
            return result() if callable(result) else result

        return record

    util = FakeModule("win32serviceutil")
    util.ServiceFramework = ServiceFramework
    util.GetServiceCustomOption = lambda name, option, default=None: fake.options.get(option, default)
    util.SetServiceCustomOption = lambda name, option, value: fake.options.__setitem__(option, value)
    for name in (
        "InstallService",
        "ChangeServiceConfig",
        "StartService",
        "StopServiceWithDeps",
        "RemoveService",
    ):
        setattr(util, name, call(name))
    util.LocateSpecificServiceExe = call("LocateSpecificServiceExe", r'"C:\venv\pythonservice.exe"')
    fake.query = [(16, SERVICE_RUNNING, 13, 0, 0, 0, 0)]
    util.QueryServiceStatus = lambda name: fake.query.pop(0) if len(fake.query) > 1 else fake.query[0]
    service = FakeModule("win32service")
    service.error = Win32Error
    manager = FakeModule("servicemanager")
    manager.LogErrorMsg = lambda text: fake.events.append(("error", text))
    manager.LogInfoMsg = lambda text: fake.events.append(("info", text))
    for module in (util, service, manager):
        monkeypatch.setitem(sys.modules, module.__name__, module)
    winservice.service_class.cache_clear()
    yield fake
    winservice.service_class.cache_clear()


def test_service_class_imports_and_instantiates_with_fakes(pywin32: types.SimpleNamespace) -> None:
    cls = winservice.MagnetdService  # as pythonservice.exe finds it
    assert cls is winservice.service_class()
    assert (cls._svc_name_, cls._svc_display_name_) == ("magnetd", winservice.DISPLAY_NAME)
    service = cls(["magnetd"])
    assert service.GetAcceptedControls() == 0x1 | 0x4 | 0x8
    assert isinstance(service.core, ServiceCore)
    supervisor = FakeSupervisor.__new__(FakeSupervisor)
    supervisor.calls = []
    supervisor.stopped = threading.Event()
    service.core.supervisor = supervisor
    assert service.ServiceCtrlHandlerEx(CONTROL_PARAMCHANGE, 0, None) == NO_ERROR
    assert service.ServiceCtrlHandlerEx(CONTROL_STOP, 0, None) == NO_ERROR
    assert supervisor.calls == ["reload", "stop"]
    assert pywin32.statuses[0] == (SERVICE_STOP_PENDING, winservice.STOP_WAIT_HINT_MS, 0, 0)


def test_svcrun_with_a_bad_config_reports_stopped_with_our_code(
    pywin32: types.SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pywin32.options["ConfigPath"] = str(write_config(tmp_path, "folders: 3\n"))
    exits: list[int] = []

    def fake_exit(code: int) -> None:
        exits.append(code)
        raise SystemExit(code)

    monkeypatch.setattr(os, "_exit", fake_exit)
    service = winservice.service_class()(["magnetd"])
    with pytest.raises(SystemExit):
        service.SvcRun()
    assert exits == [78]
    assert pywin32.statuses[-1] == (SERVICE_STOPPED, 0, ERROR_SERVICE_SPECIFIC_ERROR, CONFIG_ERROR_CODE)
    errors = [text for kind, text in pywin32.events if kind == "error"]
    assert len(errors) == 1 and "folders" in errors[0]


def test_svcrun_returns_normally_after_a_clean_stop(pywin32: types.SimpleNamespace, tmp_path: Path) -> None:
    pywin32.options["ConfigPath"] = str(write_config(tmp_path))
    service = winservice.service_class()(["magnetd"])
    service.core.environ = ENV
    service.core.supervisor_factory = lambda cfg: FakeSupervisor(cfg, block=False)
    service.SvcRun()  # pythonservice.exe reports SERVICE_STOPPED (exit 0) after this
    assert [s[0] for s in pywin32.statuses] == [SERVICE_RUNNING]
    assert any(kind == "info" for kind, _ in pywin32.events)


# -- magnetd service install|remove|start|stop ----------------------------------------------


def calls(fake: types.SimpleNamespace) -> list[str]:
    return [name for name, _, _ in fake.calls]


def test_install_registers_the_service_and_its_config(
    pywin32: types.SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path)
    assert winservice.manage("install", path, "manual") == 0
    name, _args, kwargs = pywin32.calls[0]
    assert name == "InstallService" and kwargs == winservice.install_options("manual")
    assert pywin32.options == {"ConfigPath": str(path)}
    out = capsys.readouterr().out
    assert "installed (manual start)" in out and "pythonservice.exe" in out and "missing" not in out


def test_install_over_an_existing_service_updates_it(
    pywin32: types.SimpleNamespace, capsys: pytest.CaptureFixture[str]
) -> None:
    pywin32.fail["InstallService"] = Win32Error(
        1073, "CreateService", "The specified service already exists."
    )
    assert winservice.manage("install", None, "auto") == 0
    assert calls(pywin32)[:2] == ["InstallService", "ChangeServiceConfig"]
    assert pywin32.calls[1][2]["startType"] == 2
    assert pywin32.options == {"ConfigPath": ""}
    out = capsys.readouterr().out
    assert "updated" in out and r"magnetd\magnetd.yaml" in out and "missing" in out


def test_errors_become_exit_1_with_a_hint(
    pywin32: types.SimpleNamespace, capsys: pytest.CaptureFixture[str]
) -> None:
    pywin32.fail["InstallService"] = Win32Error(5, "OpenSCManager", "Access is denied.")
    assert winservice.manage("install", None, "auto") == 1
    assert "administrator" in capsys.readouterr().err


def test_start_waits_for_running(pywin32: types.SimpleNamespace, capsys: pytest.CaptureFixture[str]) -> None:
    pywin32.query = [(16, SERVICE_START_PENDING, 0, 0, 0, 1, 5000), (16, SERVICE_RUNNING, 13, 0, 0, 0, 0)]
    assert winservice.manage("start") == 0
    assert "service magnetd: running" in capsys.readouterr().out


def test_start_reports_a_config_error(
    pywin32: types.SimpleNamespace, capsys: pytest.CaptureFixture[str]
) -> None:
    pywin32.query = [(16, SERVICE_STOPPED, 0, ERROR_SERVICE_SPECIFIC_ERROR, CONFIG_ERROR_CODE, 0, 0)]
    assert winservice.manage("start") == 1
    assert "the config is invalid" in capsys.readouterr().err


def test_stop_and_remove(pywin32: types.SimpleNamespace, capsys: pytest.CaptureFixture[str]) -> None:
    pywin32.query = [(16, SERVICE_STOPPED, 0, 0, 0, 0, 0)]
    assert winservice.manage("stop") == 0
    assert "service magnetd: stopped" in capsys.readouterr().out
    assert winservice.manage("remove") == 0
    assert calls(pywin32) == ["StopServiceWithDeps", "StopServiceWithDeps", "RemoveService"]


def test_missing_pywin32_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "win32service", None)
    assert winservice.manage("start") == 1
    assert 'pip install "magnetd[windows]"' in capsys.readouterr().err
