"""Load and validate ``magnetd.yaml``: every problem at once, each naming its key and a fix.

The YAML is checked against ``schema.yaml`` first (types, unknown keys, ranges),
then against rules a schema cannot say (one password source per instance,
folders that must not nest). A rule only reads the keys the schema accepted.
Only a config with no problem becomes a frozen :class:`Config`.
"""

from __future__ import annotations

import difflib
import functools
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from magnetd import apikeys, passwords
from magnetd.balance import settings as balance
from magnetd.balance.settings import Limits, Strategy
from magnetd.health import gatespec
from magnetd.health.gatespec import GateSpec
from magnetd.intake import options
from magnetd.intake.links import FetchLimits, fetch_limits
from magnetd.model import AddOptions
from magnetd.passwords import PASSWORD_SOURCES
from magnetd.passwords import resolve as _resolve
from magnetd.telemetry import settings
from magnetd.telemetry.settings import Http, Notify

DEFAULT_MAX_FILE_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config: where, what, and how to fix it."""

    key: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.key or '(top level)'}: {self.message}"
        return f"{text} (hint: {self.hint})" if self.hint else text


class ConfigError(Exception):
    """A config that cannot be used; ``problems`` lists every reason."""

    def __init__(self, path: Path, problems: Iterable[Problem]) -> None:
        self.path = path
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{path}: {len(self.problems)} problem(s):\n{lines}")


class Secret(str):
    """A string that never shows itself in a repr or a log line."""

    def __repr__(self) -> str:
        return "Secret('***')"


@dataclass(frozen=True)
class Folders:
    inbox: Path
    sent: Path
    failed: Path
    state: Path

    def all(self) -> tuple[Path, ...]:
        return (self.inbox, self.sent, self.failed, self.state)


@dataclass(frozen=True)
class Vpn:
    """A single gate (``vpn`` as one mapping): its name and its reconnect command."""

    gateway: str  # the gate's name: its gateway address when it pings one, as it always was
    timeout: float = 2.0
    count: int = 2
    reconnect_command: tuple[str, ...] = ()  # run when the gate goes down; empty: fail over at once
    reconnect_wait: float = 30.0


@dataclass(frozen=True)
class Instance:
    name: str
    url: str
    username: str
    password: Secret = field(repr=False)
    password_source: str = "password"
    password_from: str = ""  # where, for messages: "password_env QBT_PASSWORD"; never the password
    password_file: Path | None = None  # watched for a new password while the login fails
    api_key: Secret = field(default=Secret(""), repr=False)  # qBittorrent 5.2+: instead of a login
    requires_vpn: bool = False  # whether it needs any gate (``requires``)
    requires: frozenset[str] = frozenset()  # the names of the gates it needs
    require_connection: bool = False  # not eligible while qBittorrent says it is disconnected
    verify_tls: bool | str = True
    timeout: float = 10.0
    limits: Limits = field(default_factory=Limits)  # categories, max_active, min_free_space, rate


class Polling(StrEnum):
    """``watch.polling``: how the inbox is watched."""

    AUTO = "auto"  # poll on network file systems, use change notifications elsewhere
    ALWAYS = "true"
    NEVER = "false"


@dataclass(frozen=True)
class Watch:
    polling: Polling = Polling.AUTO
    rescan_interval: float = 30.0
    settle_seconds: float = 1.0


@dataclass(frozen=True)
class Config:
    path: Path
    folders: Folders
    instances: tuple[Instance, ...]
    probe_interval: float = 10.0
    vpn: Vpn | None = None  # the single gate, when ``vpn`` is one mapping
    gates: tuple[GateSpec, ...] = ()  # every gate, in config order
    recheck_interval: float = 2.0
    defaults: AddOptions = field(default_factory=AddOptions)
    folder_options: Mapping[str, AddOptions] = field(default_factory=dict)
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    batch_size: int = 1000
    sent_days: float | None = None
    watch: Watch = Watch()
    notify: Notify = field(default_factory=Notify)
    http: Http | None = None
    warnings: tuple[str, ...] = ()
    strategy: Strategy = Strategy.PRIORITY  # dispatch.strategy
    fetch: FetchLimits = field(default_factory=FetchLimits)  # limits.max_torrent_bytes, fetch_*

    def secrets(self) -> Iterator[str]:
        """Every secret value, for the log's redaction."""
        yield from (i.password for i in self.instances)
        yield from (i.api_key for i in self.instances if i.api_key)
        yield from (g.api_key for g in self.gates if g.api_key)
        yield from settings.secrets(self.notify, self.http)


def default_path(environ: Mapping[str, str] = os.environ) -> Path:
    """Where the config is when ``--config`` is not given."""
    if environ.get("MAGNETD_CONFIG"):
        return Path(environ["MAGNETD_CONFIG"])
    local = Path("magnetd.yaml")
    if local.exists():
        return local
    if sys.platform == "win32":
        return Path(environ.get("PROGRAMDATA", r"C:\ProgramData")) / "magnetd" / "magnetd.yaml"
    return Path("/etc/magnetd/magnetd.yaml")


Accepted = Callable[..., bool]
"""``accepted("instances", 0, "name")``: whether the schema found nothing wrong at or below that key."""


def load(path: Path, environ: Mapping[str, str] = os.environ, secrets: bool = True) -> Config:
    """Read, validate and resolve the config at ``path``; raise ConfigError listing every problem.

    With ``secrets=False`` passwords are neither read nor checked (for commands that
    only touch the folders: ``status``, ``add``, ``retry``).
    """
    path = path.expanduser().absolute()
    raw = _read_yaml(path)
    errors = schema_errors(raw)
    problems = list(explain(errors))
    found = rule_problems(raw, path.parent, environ, _accepted(errors))
    problems += [p for p in found if p not in problems and (secrets or not _is_secret(p))]
    if problems:
        raise ConfigError(path, problems)
    return _build(raw, path, environ if secrets else None)


def _accepted(errors: Sequence[jsonschema.ValidationError]) -> Accepted:
    rejected = {tuple(error.absolute_path) for error in errors}

    def accepted(*key: Any) -> bool:
        return not any(where[: len(key)] == key for where in rejected)

    return accepted


def _is_secret(problem: Problem) -> bool:
    last = problem.key.rsplit(".", 1)[-1]
    return last in (*PASSWORD_SOURCES, *settings.SECRET_SOURCES, *gatespec.API_KEY_SOURCES)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        hint = "pass --config PATH, set MAGNETD_CONFIG, or copy magnetd.yaml.example"
        raise ConfigError(path, [Problem("", "config file not found", hint)]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [Problem("", f"cannot read: {exc}", "check permissions")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        hint = "check indentation and quoting"
        raise ConfigError(path, [Problem("", f"not valid YAML{at}: {exc}", hint)]) from None
    if not isinstance(data, dict):
        hint = "start from magnetd.yaml.example"
        raise ConfigError(path, [Problem("", "the config must be a mapping of keys", hint)])
    return data


def _schema() -> dict[str, Any]:
    text = resources.files("magnetd").joinpath("schema.yaml").read_text(encoding="utf-8")
    schema: dict[str, Any] = yaml.safe_load(text)
    return schema


def schema_errors(raw: Mapping[str, Any]) -> list[jsonschema.ValidationError]:
    """Every schema violation in ``raw``, in document order."""
    validator = jsonschema.Draft202012Validator(_schema())
    return sorted(validator.iter_errors(raw), key=lambda e: [str(p) for p in e.absolute_path])


def explain(errors: Iterable[jsonschema.ValidationError]) -> Iterator[Problem]:
    """Problems for schema errors; the missing keys of one object are named once each."""
    required_done: set[tuple[Any, ...]] = set()
    for error in errors:
        if error.validator == "required":
            where = tuple(error.absolute_path)
            if where in required_done:  # one error per missing key, each naming them all
                continue
            required_done.add(where)
        yield from _explain(error)


def _key(parts: Iterable[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _explain(error: jsonschema.ValidationError) -> Iterator[Problem]:
    base = list(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    properties: dict[str, Any] = schema.get("properties", {})
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        for extra in sorted(set(error.instance) - set(properties), key=str):
            near = difflib.get_close_matches(str(extra), list(properties), n=1)
            hint = f"did you mean '{near[0]}'?" if near else f"allowed: {', '.join(properties)}"
            yield Problem(_key([*base, extra]), "unknown key", hint)
    elif error.validator == "required" and isinstance(error.instance, dict):
        required = error.validator_value if isinstance(error.validator_value, list) else []
        for missing in [k for k in required if k not in error.instance]:
            hint = properties.get(missing, {}).get("description", "")
            yield Problem(_key([*base, missing]), "is required but missing", hint)
    elif error.validator == "pattern":
        yield Problem(
            _key(base), f"{error.instance!r} is not in the expected form", schema.get("description", "")
        )
    else:
        yield Problem(_key(base), str(error.message), schema.get("description", ""))


def rule_problems(
    raw: Mapping[str, Any],
    base: Path,
    environ: Mapping[str, str],
    accepted: Accepted = lambda *key: True,
) -> Iterator[Problem]:
    """Problems the schema cannot express: secrets, duplicate names, nesting folders.

    Each rule reads only keys the schema accepted (``accepted``), so it never
    meets a value of the wrong type.
    """
    names: set[str] = set()
    instances = raw.get("instances")
    for index, inst in enumerate(instances if isinstance(instances, list) else []):
        if isinstance(inst, dict):
            here = functools.partial(accepted, "instances", index)
            yield from _instance_problems(inst, f"instances[{index}]", here, names, base, environ)
    if isinstance(raw.get("folders"), dict) and accepted("folders"):
        yield from _folder_problems(_folders(raw, base))
    notify, http = raw.get("notify"), raw.get("http")
    if isinstance(notify, dict) and accepted("notify"):
        yield from (Problem(*found) for found in settings.problems(notify, base, environ))
    if isinstance(http, dict) and accepted("http"):
        yield from (Problem(*found) for found in settings.http_problems(http, base, environ))
    yield from (Problem(*found) for found in gatespec.problems(raw, base, environ, accepted))


def _instance_problems(
    inst: Mapping[str, Any],
    key: str,
    accepted: Accepted,
    names: set[str],
    base: Path,
    environ: Mapping[str, str],
) -> Iterator[Problem]:
    name = inst.get("name")
    if isinstance(name, str) and accepted("name"):
        if name in names:
            yield Problem(f"{key}.name", f"'{name}' is used twice", "give each a new name")
        names.add(name)
    yield from _password_problems(inst, key, accepted, base, environ)
    verify = inst.get("verify_tls", True)
    if isinstance(verify, str) and accepted("verify_tls") and not _is_file(_resolve(verify, base)):
        hint = "give the path of a PEM CA bundle, or true/false"
        yield Problem(f"{key}.verify_tls", f"CA bundle {verify!r} not found", hint)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # e.g. a folder on the way that magnetd may not enter
        return False


def _password_problems(
    inst: Mapping[str, Any], key: str, accepted: Accepted, base: Path, environ: Mapping[str, str]
) -> Iterator[Problem]:
    if apikeys.used(inst):  # an API key instead of username + password
        yield from (Problem(*found) for found in apikeys.problems(inst, key, accepted, base, environ))
        return
    if "username" not in inst:
        hint = "add username, or authenticate with api_key_env or api_key_file (qBittorrent 5.2+)"
        yield Problem(f"{key}.username", "is required but missing", hint)
    sources = [s for s in PASSWORD_SOURCES if s in inst]
    if len(sources) != 1:
        what = "none is set" if not sources else f"{', '.join(sources)} are all set"
        hint = "set exactly one of password, password_file, password_env, password_credential"
        yield Problem(f"{key}.password", f"needs one password source; {what}", hint)
        return
    if not accepted(sources[0]):
        return  # the schema already said what is wrong with it
    try:
        passwords.read_password(inst, base, environ)
    except passwords.SecretError as exc:
        yield Problem(f"{key}.{exc.key}", exc.message, exc.hint)


def _folders(raw: Mapping[str, Any], base: Path) -> Folders:
    spec = raw["folders"]
    inbox = _resolve(spec["inbox"], base)
    state = _resolve(spec["state"], base) if "state" in spec else inbox.parent / "state"
    return Folders(
        inbox=inbox, sent=_resolve(spec["sent"], base), failed=_resolve(spec["failed"], base), state=state
    )


def _folder_problems(folders: Folders) -> Iterator[Problem]:
    named = {"sent": folders.sent, "failed": folders.failed, "state": folders.state}
    inbox = _real(folders.inbox)
    for name, path in named.items():
        real = _real(path)
        if real == inbox or real.is_relative_to(inbox):
            hint = "put it beside the inbox, e.g. ./magnetd-data/" + name
            yield Problem(f"folders.{name}", "must not be the inbox or inside it", hint)
    if _real(folders.sent) == _real(folders.failed):
        yield Problem("folders.failed", "must differ from folders.sent", "use two folders")


def _real(path: Path) -> Path:
    """``path`` with symbolic links resolved as far as they can be."""
    try:
        return path.resolve()
    except (OSError, RuntimeError, ValueError):  # a link loop, a NUL byte: compare it as written
        return path.absolute()


def _build(raw: dict[str, Any], path: Path, environ: Mapping[str, str] | None) -> Config:
    """The frozen config; passwords are left empty when ``environ`` is None."""
    base = path.parent
    vpn = raw.get("vpn")
    gates = gatespec.build(vpn, base, environ)
    instances = []
    for inst in raw["instances"]:
        auth = apikeys.auth_fields(inst, base, path, environ)
        verify = inst.get("verify_tls", True)
        instances.append(
            Instance(
                name=inst["name"],
                url=inst["url"],
                username=auth["username"],
                password=Secret(auth.get("password", "")),
                api_key=Secret(auth.get("api_key", "")),
                password_source=auth["password_source"],
                password_from=auth["password_from"],
                password_file=auth["password_file"],
                requires_vpn=bool(gatespec.required(inst.get("requires_vpn"), gates)),
                requires=gatespec.required(inst.get("requires_vpn"), gates),
                require_connection=bool(inst.get("require_connection", False)),
                verify_tls=str(_resolve(verify, base)) if isinstance(verify, str) else verify,
                timeout=float(inst.get("timeout", 10.0)),
                limits=balance.limits(inst),
            )
        )
    defaults = raw.get("defaults") or {}
    watch = raw.get("watch") or {}
    limits = raw.get("limits") or {}
    return Config(
        path=path,
        folders=_folders(raw, base),
        instances=tuple(instances),
        probe_interval=float(raw.get("probe_interval", 10.0)),
        vpn=_vpn(vpn) if isinstance(vpn, dict) else None,
        gates=gates,
        recheck_interval=gatespec.recheck_interval(raw, float(raw.get("probe_interval", 10.0))),
        defaults=options.build(defaults),
        folder_options={
            str(k).strip("/"): options.build(v) for k, v in (raw["folders"].get("options") or {}).items()
        },
        max_file_bytes=int(limits.get("max_file_bytes", DEFAULT_MAX_FILE_BYTES)),
        batch_size=int(limits.get("batch_size", 1000)),
        sent_days=(raw.get("retention") or {}).get("sent_days"),
        watch=Watch(
            polling=Polling(str(watch.get("polling", "auto")).lower()),
            rescan_interval=float(watch.get("rescan_interval", 30.0)),
            settle_seconds=float(watch.get("settle_seconds", 1.0)),
        ),
        notify=settings.build(raw.get("notify"), base, environ),
        http=settings.build_http(raw.get("http"), base, environ),
        warnings=tuple(_warnings(raw, path)),
        strategy=balance.strategy(raw),
        fetch=fetch_limits(limits),
    )


def _vpn(vpn: Mapping[str, Any]) -> Vpn:
    return Vpn(
        gateway=gatespec.name_of(vpn),
        timeout=float(vpn.get("timeout", 2.0)),
        count=int(vpn.get("count", 2)),
        reconnect_command=tuple(vpn.get("reconnect_command") or ()),
        reconnect_wait=float(vpn.get("reconnect_wait", 30.0)),
    )


def _warnings(raw: Mapping[str, Any], path: Path) -> Iterator[str]:
    """Risky but valid settings, logged at start-up."""
    for inst in raw["instances"]:
        if inst.get("verify_tls") is False:
            yield f"instances '{inst['name']}': verify_tls is false, TLS certificates are NOT checked"
    yield from passwords.exposure_warnings(raw, path)
