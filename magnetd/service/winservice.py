"""magnetd as a Windows service on pywin32: register it, answer the SCM, run the Supervisor.

pywin32 is imported only inside functions, so this module imports and is tested anywhere:
:class:`ServiceCore` is the logic; Windows is behind the :class:`Scm` port.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PureWindowsPath
from typing import Any, Protocol, TextIO

from magnetd import config as configuration
from magnetd import logs
from magnetd.model import ExitCode
from magnetd.service.systemd import Notifier

SERVICE_NAME = "magnetd"
DISPLAY_NAME = "magnetd \u2013 magnet links to qBittorrent"
DESCRIPTION = "Sends the magnet links dropped in its inbox folder to qBittorrent, verified by infohash."
CLASS_STRING = "magnetd.service.winservice.MagnetdService"
CONFIG_PARAMETER = "ConfigPath"  # HKLM\SYSTEM\CurrentControlSet\Services\magnetd\Parameters
LOG_NAME, START_WAIT_S = "magnetd.log", 60  # seconds `magnetd service start` waits for RUNNING
# the SCM waits STOP_WAIT_HINT_MS for each STOP_PENDING report; we renew it for STOP_PENDING_LIMIT_S
STOP_WAIT_HINT_MS, STOP_PENDING_LIMIT_S = 30_000, 300

# Win32 values (winsvc.h, winerror.h), fixed by the ABI, so the logic needs no pywin32.
SERVICE_STOPPED, SERVICE_START_PENDING, SERVICE_STOP_PENDING, SERVICE_RUNNING = 1, 2, 3, 4
CONTROL_STOP, CONTROL_INTERROGATE, CONTROL_SHUTDOWN, CONTROL_PARAMCHANGE = 1, 4, 5, 6
ACCEPTED_CONTROLS = 0x1 | 0x4 | 0x8  # SERVICE_ACCEPT_STOP | _SHUTDOWN | _PARAMCHANGE
START_TYPES = {"auto": 2, "manual": 3}  # SERVICE_AUTO_START, SERVICE_DEMAND_START
NO_ERROR, ERROR_ACCESS_DENIED, ERROR_CALL_NOT_IMPLEMENTED = 0, 5, 120
ERROR_SERVICE_REQUEST_TIMEOUT, ERROR_SERVICE_ALREADY_RUNNING = 1053, 1056
ERROR_SERVICE_SPECIFIC_ERROR, ERROR_SERVICE_EXISTS = 1066, 1073
CUSTOMER_BIT = 0x20000000  # marks a service-specific code as ours, not a Win32 error number

_ACTIONS = {CONTROL_STOP: "stop", CONTROL_SHUTDOWN: "stop", CONTROL_PARAMCHANGE: "reload"}
_ACTIONS[CONTROL_INTERROGATE] = "interrogate"
_STATES = dict(enumerate(("stopped", "starting", "stopping", "running", "resuming", "pausing", "paused"), 1))
_HINTS = {ERROR_ACCESS_DENIED: "run it from an administrator (elevated) prompt"}
_HINTS[ERROR_SERVICE_REQUEST_TIMEOUT] = "if it never starts, see 'Error 1053' in the README"


def install_options(startup: str) -> dict[str, Any]:
    """Keyword arguments for pywin32's InstallService/ChangeServiceConfig (pythonservice.exe hosts us)."""
    if startup not in START_TYPES:
        raise ValueError(f"startup must be one of {', '.join(START_TYPES)}, not {startup!r}")
    names = {"serviceName": SERVICE_NAME, "displayName": DISPLAY_NAME, "description": DESCRIPTION}
    return {"pythonClassString": CLASS_STRING, "startType": START_TYPES[startup], **names}


def service_parameters(config: Path | None) -> dict[str, str]:
    """Values for the service's Parameters key: ConfigPath, "" for the default."""
    return {CONFIG_PARAMETER: str(config.absolute()) if config else ""}


def resolve_config_path(stored: str | None, environ: Mapping[str, str] = os.environ) -> str:
    """The config the service reads: the stored path, else ``%PROGRAMDATA%\\magnetd\\magnetd.yaml``."""
    if stored and stored.strip():
        return stored.strip()
    return str(PureWindowsPath(environ.get("PROGRAMDATA") or r"C:\ProgramData", "magnetd", "magnetd.yaml"))


def control_action(control: int) -> str:
    """What an SCM control code asks for: ``stop``, ``reload``, ``interrogate`` or ``unsupported``."""
    return _ACTIONS.get(control, "unsupported")


def service_exit_code(code: int) -> int:
    """The service-specific exit code the SCM records for magnetd's exit ``code`` (0 stays 0)."""
    return CUSTOMER_BIT | code if code else 0


def describe_status(status: Sequence[int]) -> str:
    """One line for a QueryServiceStatus tuple: the state, and why it stopped."""
    state, win32_exit, specific = status[1], status[3], status[4]
    text = _STATES.get(state, f"state {state}")
    if state != SERVICE_STOPPED or not win32_exit:
        return text
    if win32_exit != ERROR_SERVICE_SPECIFIC_ERROR:
        return f"{text}: Windows error {win32_exit}"
    code = specific & ~CUSTOMER_BIT
    why = "the config is invalid" if code == ExitCode.CONFIG else f"it failed with code {code}"
    return f"{text}: {why} (see Event Viewer > Windows Logs > Application, source magnetd)"


def explain_error(winerror: int, strerror: str) -> str:
    """A pywin32 error as a line for people, with a hint when there is one."""
    hint = f"; {_HINTS[winerror]}" if winerror in _HINTS else ""
    return f"{strerror.strip().rstrip('.')} (Windows error {winerror}){hint}"


class Scm(Protocol):  # what the service needs from Windows: status reports and the event log
    def report(self, state: int, wait_hint_ms: int = 0, exit_code: int = 0) -> None: ...
    def log_error(self, text: str) -> None: ...
    def log_info(self, text: str) -> None: ...


class SupervisorLike(Protocol):
    def request_stop(self) -> None: ...
    def request_reload(self) -> None: ...
    def run(self) -> int: ...


def make_supervisor(cfg: configuration.Config) -> SupervisorLike:
    from magnetd.service.supervisor import Supervisor

    return Supervisor(cfg, notifier=Notifier(environ={}))  # no systemd under the SCM


class ServiceCore:
    """The service's logic: SCM controls in; config, log file, Supervisor run and exit code out."""

    def __init__(
        self,
        scm: Scm,
        stored_config: Callable[[], str | None],
        supervisor_factory: Callable[[configuration.Config], SupervisorLike] = make_supervisor,
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        self.scm, self.stored_config, self.environ = scm, stored_config, environ
        self.supervisor_factory = supervisor_factory
        self.supervisor: SupervisorLike | None = None
        self.log_file: TextIO | None = None
        self._stopping, self._done = threading.Event(), threading.Event()

    def control(self, control: int) -> int:
        """Handle one control code on the SCM's thread, at once; the Win32 result."""
        action = control_action(control)
        if action == "stop":
            self.request_stop()
        elif action == "reload" and self.supervisor is not None:
            self.supervisor.request_reload()
        return ERROR_CALL_NOT_IMPLEMENTED if action == "unsupported" else NO_ERROR

    def request_stop(self) -> None:
        """Report STOP_PENDING, tell the Supervisor, and keep the SCM waiting until run() ends."""
        first = not self._stopping.is_set()
        self._stopping.set()
        self.scm.report(SERVICE_STOP_PENDING, STOP_WAIT_HINT_MS)
        if self.supervisor is not None:
            self.supervisor.request_stop()
        if first:
            threading.Thread(target=self._keep_stop_pending, name="scm-stop-pending", daemon=True).start()

    def _keep_stop_pending(self) -> None:
        interval = STOP_WAIT_HINT_MS / 3000
        for _ in range(int(STOP_PENDING_LIMIT_S / interval)):
            if self._done.wait(interval):
                return
            self.scm.report(SERVICE_STOP_PENDING, STOP_WAIT_HINT_MS)  # each report is a new checkpoint

    def run(self) -> int:
        """Run until stopped; the service-specific exit code (0, or CUSTOMER_BIT | magnetd's code)."""
        try:
            path = Path(resolve_config_path(self.stored_config(), self.environ))
            cfg = configuration.load(path, self.environ)
            log_path = self._log_to_file(cfg)
        except (configuration.ConfigError, OSError) as exc:
            self._done.set()
            self.scm.log_error(f"magnetd cannot start: {exc}")
            code = ExitCode.CONFIG if isinstance(exc, configuration.ConfigError) else ExitCode.ERROR
            return service_exit_code(code)
        self.supervisor = self.supervisor_factory(cfg)
        if self._stopping.is_set():  # a stop that came before the Supervisor existed
            self.supervisor.request_stop()
        self.scm.report(SERVICE_RUNNING)
        self.scm.log_info(f"magnetd started: config {cfg.path}, log {log_path}")
        try:
            return service_exit_code(self.supervisor.run())
        except Exception:
            logs.get(__name__).exception("service_failed", hint="the traceback is in the event log too")
            raise
        finally:
            self._done.set()

    def _log_to_file(self, cfg: configuration.Config) -> Path:
        """JSON lines to ``<state>/magnetd.log``, line-buffered, open until the process ends."""
        cfg.folders.state.mkdir(parents=True, exist_ok=True)
        path = cfg.folders.state / LOG_NAME
        self.log_file = path.open("a", encoding="utf-8", buffering=1)
        logs.setup("json", "info", stream=self.log_file)
        logs.register_secrets(cfg.secrets())
        return path


@functools.cache
def service_class() -> type[Any]:
    """The pywin32 service class, built on first use so that this module imports without pywin32."""
    import servicemanager
    import win32serviceutil

    class MagnetdService(win32serviceutil.ServiceFramework):  # type: ignore[misc]
        _svc_name_, _svc_display_name_, _svc_description_ = SERVICE_NAME, DISPLAY_NAME, DESCRIPTION

        def __init__(self, args: Sequence[str]) -> None:
            super().__init__(args)
            read = functools.partial(win32serviceutil.GetServiceCustomOption, SERVICE_NAME, CONFIG_PARAMETER)
            self.core = ServiceCore(self, read)  # this class is the core's Scm port

        def report(self, state: int, wait_hint_ms: int = 0, exit_code: int = 0) -> None:
            win32_exit = ERROR_SERVICE_SPECIFIC_ERROR if exit_code else 0
            self.ReportServiceStatus(
                state, waitHint=wait_hint_ms, win32ExitCode=win32_exit, svcExitCode=exit_code
            )

        log_error = staticmethod(servicemanager.LogErrorMsg)
        log_info = staticmethod(servicemanager.LogInfoMsg)

        def GetAcceptedControls(self) -> int:
            return ACCEPTED_CONTROLS

        def ServiceCtrlHandlerEx(self, control: int, event_type: int, data: object) -> int:
            return self.core.control(control)

        def SvcRun(self) -> None:
            code = self.core.run()
            if code:  # pythonservice.exe would report STOPPED with 0 once we return: report, then end
                self.report(SERVICE_STOPPED, exit_code=code)
                os._exit(code & 0xFF or ExitCode.ERROR)

    return MagnetdService


def __getattr__(name: str) -> Any:
    """``MagnetdService``, which pythonservice.exe looks up by name."""
    if name == "MagnetdService":
        return service_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def manage(action: str, config: Path | None = None, startup: str = "auto") -> int:
    """Run ``magnetd service install|remove|start|stop``; print what happened; the CLI's exit code."""
    try:
        import win32service
        import win32serviceutil as util
    except ImportError:
        print('magnetd: pywin32 is missing: pip install "magnetd[windows]"', file=sys.stderr)
        return ExitCode.ERROR
    try:
        if action == "install":
            print(_install(util, win32service.error, config, startup))
            return 0
        if action == "start":
            return _start(util, win32service.error)
        util.StopServiceWithDeps(SERVICE_NAME, waitSecs=STOP_PENDING_LIMIT_S)  # waits; fine if not running
        if action == "remove":
            util.RemoveService(SERVICE_NAME)
        status = "removed" if action == "remove" else describe_status(util.QueryServiceStatus(SERVICE_NAME))
        print(f"service {SERVICE_NAME}: {status}")
    except win32service.error as exc:
        print(f"magnetd: service {action}: {explain_error(exc.winerror, exc.strerror)}", file=sys.stderr)
        return ExitCode.ERROR
    return 0


def _install(util: Any, error: type[Exception], config: Path | None, startup: str) -> str:
    options, verb = install_options(startup), "installed"
    try:
        util.InstallService(**options)
    except error as exc:
        if getattr(exc, "winerror", None) != ERROR_SERVICE_EXISTS:
            raise
        util.ChangeServiceConfig(**options)
        verb = "updated"
    for key, value in service_parameters(config).items():
        util.SetServiceCustomOption(SERVICE_NAME, key, value)
    path = resolve_config_path(service_parameters(config)[CONFIG_PARAMETER])
    missing = "" if Path(path).is_file() else " (missing: create it before starting the service)"
    exe = util.LocateSpecificServiceExe(SERVICE_NAME)
    return f"service {SERVICE_NAME} {verb} ({startup} start): {exe}\nconfig: {path}{missing}"


def _start(util: Any, error: type[Exception], sleep: Callable[[float], None] = time.sleep) -> int:
    try:
        util.StartService(SERVICE_NAME)
    except error as exc:
        if getattr(exc, "winerror", None) != ERROR_SERVICE_ALREADY_RUNNING:
            raise
    for _ in range(START_WAIT_S * 4):  # until it leaves START_PENDING
        if util.QueryServiceStatus(SERVICE_NAME)[1] != SERVICE_START_PENDING:
            break
        sleep(0.25)
    status = util.QueryServiceStatus(SERVICE_NAME)
    code = 0 if status[1] == SERVICE_RUNNING else ExitCode.ERROR
    print(f"service {SERVICE_NAME}: {describe_status(status)}", file=sys.stderr if code else sys.stdout)
    return code
