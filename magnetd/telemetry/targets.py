"""Notification targets: where an event goes (Apprise, a webhook, a command), one class per kind.

Every target takes the same :class:`~magnetd.telemetry.events.Event` and answers
with a :class:`Result`: ``DELIVERED``, ``RETRY`` (worth trying again: connection
error, timeout, HTTP 5xx, an Apprise failure) or ``FAILED`` (trying again will
not help: HTTP 3xx/4xx, a command that exits non-zero or cannot start). A
result's detail never holds a secret: no Apprise URL, no header value, no query
string, no command argument; the target is named by its ``name`` only.

Apprise is imported only when an Apprise target is built (or a URL checked),
and its own log is kept out of magnetd's output: Apprise logs URLs (at debug)
and host names (at warning), and an Apprise URL is a secret.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType, ModuleType
from typing import Any, ClassVar, Protocol

import requests

from magnetd import __version__, optional
from magnetd.telemetry.events import Event, EventName

WEBHOOK_TIMEOUT = 10.0
"""Seconds a webhook may take to connect, and then to answer."""
COMMAND_TIMEOUT = 30.0
"""Seconds a command may run before its process group is killed."""
USER_AGENT = f"magnetd/{__version__}"
EXCERPT = 200
"""Characters of a command's stderr kept in a result's detail."""


class Outcome(StrEnum):
    """What became of one delivery attempt (or, from the postman, of a whole delivery)."""

    DELIVERED = "delivered"
    RETRY = "retry"  # worth another try: connection error, timeout, HTTP 5xx, Apprise failure
    FAILED = "failed"  # another try will not help: HTTP 3xx/4xx, a command's exit code


@dataclass(frozen=True)
class Result:
    """An outcome and a short detail that is safe to log and to print."""

    outcome: Outcome
    detail: str = ""
    tries: int = 1

    @property
    def delivered(self) -> bool:
        return self.outcome == Outcome.DELIVERED


@dataclass(frozen=True)
class TargetSpec:
    """One configured target, secrets already resolved: exactly one of apprise, webhook, command."""

    name: str
    events: frozenset[EventName] | None
    apprise: str | None = field(default=None, repr=False)
    webhook: str | None = field(default=None, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    command: tuple[str, ...] = field(default=(), repr=False)
    timeout: float | None = None  # None: the kind's default (webhook 10 s, command 30 s)

    def __post_init__(self) -> None:
        kinds = [kind for kind, value in self._kinds().items() if value]
        if len(kinds) != 1:
            raise ValueError(f"notify target {self.name!r}: give exactly one of apprise, webhook, command")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError(f"notify target {self.name!r}: timeout must be positive")
        object.__setattr__(self, "headers", MappingProxyType(dict(self.headers)))
        object.__setattr__(self, "command", tuple(self.command))

    def _kinds(self) -> dict[str, object]:
        return {"apprise": self.apprise, "webhook": self.webhook, "command": self.command}

    @property
    def kind(self) -> str:
        """``apprise``, ``webhook`` or ``command``."""
        return next(kind for kind, value in self._kinds().items() if value)


class Target(Protocol):
    """What the postman needs of a target."""

    @property
    def name(self) -> str: ...

    @property
    def events(self) -> frozenset[EventName] | None: ...

    def deliver(self, event: Event) -> Result: ...


class _Base:
    kind: ClassVar[str]

    def __init__(self, spec: TargetSpec) -> None:
        if spec.kind != self.kind:
            raise ValueError(f"notify target {spec.name!r} is a {spec.kind} target, not {self.kind}")
        self.spec = spec

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def events(self) -> frozenset[EventName] | None:
        return self.spec.events

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class WebhookTarget(_Base):
    """POSTs the event body as JSON. Redirects are not followed (the headers may hold a token)."""

    kind = "webhook"

    def __init__(self, spec: TargetSpec) -> None:
        super().__init__(spec)
        self.url = spec.webhook or ""
        self.timeout = spec.timeout or WEBHOOK_TIMEOUT

    def headers(self, event: Event) -> dict[str, str]:
        return {"User-Agent": USER_AGENT, **self.spec.headers, "X-Magnetd-Event": str(event.name)}

    def deliver(self, event: Event) -> Result:
        try:
            response = requests.post(
                self.url,
                json=event.body(),
                headers=self.headers(event),
                timeout=self.timeout,
                allow_redirects=False,
            )
            response.close()
        except requests.Timeout:
            return Result(Outcome.RETRY, f"no answer within {self.timeout:g} s")
        except _BAD_REQUEST as exc:  # not worth another try; its message would hold the value
            return Result(Outcome.FAILED, f"cannot send: {type(exc).__name__}")
        except requests.RequestException as exc:
            return Result(Outcome.RETRY, f"connection failed: {os_reason(exc)}")
        return http_result(response.status_code)


_BAD_REQUEST = (
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidSchema,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidHeader,
)


def http_result(code: int) -> Result:
    """2xx delivered, 5xx retried, anything else (3xx not followed, 4xx) failed."""
    if 200 <= code < 300:
        return Result(Outcome.DELIVERED, f"HTTP {code}")
    if 500 <= code < 600:
        return Result(Outcome.RETRY, f"HTTP {code}")
    if 300 <= code < 400:
        return Result(Outcome.FAILED, f"HTTP {code} (redirects are not followed)")
    return Result(Outcome.FAILED, f"HTTP {code}")


def os_reason(exc: BaseException) -> str:
    """The operating system's words for a network error, else its type: never its message.

    A requests error's message holds the URL, query string included.
    """
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        todo.extend(arg for arg in current.args if isinstance(arg, BaseException))
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return type(exc).__name__


NOTIFY_TYPES: Mapping[EventName, str] = MappingProxyType(
    {
        EventName.VPN_DOWN: "failure",
        EventName.INSTANCE_DOWN: "failure",
        EventName.FILE_FAILED: "failure",
        EventName.VPN_UP: "success",
        EventName.INSTANCE_UP: "success",
        EventName.DRAINED: "success",
        EventName.HOLDING: "warning",
        EventName.HELD_TOO_LONG: "warning",
        EventName.AUTH_FAILED: "warning",
        EventName.FILE_SENT: "info",
        EventName.VPN_RECONNECT: "info",
        EventName.TEST: "info",
    }
)
"""Apprise's ``NotifyType`` value for each event (it sets the icon or colour on most services)."""


def load_apprise() -> ModuleType:
    """The apprise module, its logger silenced; ImportError when it is not installed."""
    logger = logging.getLogger("apprise")  # before the import: it logs then too
    logger.propagate = False  # Apprise logs URLs: they must not reach a handler on the root logger
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    module = optional.load("apprise")
    if module is None:
        raise ImportError("apprise is not installed (pip install apprise)")
    return module


def apprise_problem(url: str) -> str | None:
    """For check-config: None if Apprise takes ``url`` as exactly one service, else why not.

    The message never repeats the URL, which usually holds a token.
    """
    try:
        module = load_apprise()
    except ImportError as exc:
        return str(exc)
    probe = module.Apprise()
    if probe.add(url) is not True:
        return "Apprise does not accept this URL (unknown service, or a malformed or incomplete URL)"
    if len(probe) != 1:
        return f"the URL names {len(probe)} services; give one Apprise URL per target"
    return None


class AppriseTarget(_Base):
    """Sends ``title`` and ``message`` through one Apprise service, built once."""

    kind = "apprise"

    def __init__(self, spec: TargetSpec) -> None:
        super().__init__(spec)
        url = spec.apprise or ""
        problem = apprise_problem(url)
        if problem:
            raise ValueError(f"notify target {spec.name!r}: {problem}")
        module = load_apprise()
        asset = module.AppriseAsset(app_id="magnetd", app_desc="magnetd")
        self._apprise: Any = module.Apprise(asset=asset)
        self._apprise.add(url)
        self._lock = threading.Lock()  # the postman's worker and deliver_now may share this target

    def deliver(self, event: Event) -> Result:
        notify_type = NOTIFY_TYPES.get(event.name, "info")  # Apprise 1.x and 2.x take the plain value
        try:
            with self._lock:
                answer = self._apprise.notify(body=event.message, title=event.title, notify_type=notify_type)
        except Exception as exc:  # a plugin's bug must not kill the postman's worker
            return Result(Outcome.RETRY, f"apprise raised {type(exc).__name__}")
        if bool(answer):  # apprise 2.x: an AppriseResult; 1.x: a bool
            return Result(Outcome.DELIVERED, "sent")
        status = getattr(getattr(answer, "status", None), "name", None)
        return Result(Outcome.RETRY, "apprise could not send" + (f" ({status})" if status else ""))


class CommandTarget(_Base):
    """Runs argv with the event JSON on stdin and MAGNETD_EVENT/TITLE/MESSAGE in its environment."""

    kind = "command"

    def __init__(self, spec: TargetSpec) -> None:
        super().__init__(spec)
        self.argv = list(spec.command)
        self.timeout = spec.timeout or COMMAND_TIMEOUT

    def environment(self, event: Event) -> dict[str, str]:
        return {
            **os.environ,
            "MAGNETD_EVENT": str(event.name),
            "MAGNETD_TITLE": event.title.replace("\0", ""),
            "MAGNETD_MESSAGE": event.message.replace("\0", ""),
        }

    def deliver(self, event: Event) -> Result:
        stdin = json.dumps(event.body()).encode()
        try:
            process = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self.environment(event),
                **_own_group(),
            )
        except OSError as exc:
            return Result(Outcome.FAILED, f"cannot start: {exc.strerror or type(exc).__name__}")
        try:
            _, stderr = process.communicate(stdin, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            process.communicate()
            return Result(Outcome.RETRY, f"no exit within {self.timeout:g} s: killed")
        return _exit_result(process.returncode, stderr)


def _own_group() -> dict[str, Any]:
    """Popen arguments that start the command in a process group of its own, to kill it whole."""
    if os.name == "posix":
        return {"start_new_session": True}
    return {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)}


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        if os.name == "posix":
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
    except OSError:
        pass  # it ended on its own meanwhile


def _exit_result(code: int, stderr: bytes) -> Result:
    if code == 0:
        return Result(Outcome.DELIVERED, "exit 0")
    said = " ".join(stderr.decode(errors="replace").split())
    said = said if len(said) <= EXCERPT else "…" + said[-EXCERPT:]
    what = f"killed by signal {-code}" if code < 0 else f"exit {code}"
    return Result(Outcome.FAILED, f"{what}: {said}" if said else what)


KINDS: Mapping[str, Callable[[TargetSpec], Target]] = MappingProxyType(
    {"apprise": AppriseTarget, "webhook": WebhookTarget, "command": CommandTarget}
)


def build(spec: TargetSpec) -> Target:
    """The target a spec describes. ValueError for an Apprise URL that Apprise refuses."""
    return KINDS[spec.kind](spec)
