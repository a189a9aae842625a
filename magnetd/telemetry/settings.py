"""The ``notify`` and ``http`` sections of the config: their rules, and what is built from them.

Works on the parsed YAML after the schema accepted the section's types, as
:mod:`magnetd.config`'s own rules do; problems come back as ``(key, message,
hint)`` for it to report with the rest. Secrets (an Apprise URL, header
values) come from the config, an environment variable or a file, and are
resolved only when ``environ`` is given.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from magnetd.address import is_loopback, parse_listen
from magnetd.passwords import TOKEN_SOURCES, SecretError, read_file, read_secret, resolve
from magnetd.telemetry.events import EventName
from magnetd.telemetry.targets import TargetSpec, apprise_problem

KINDS = ("apprise", "apprise_env", "apprise_file", "webhook", "command")
SECRET_SOURCES = ("apprise", "apprise_env", "apprise_file", "headers_env", *TOKEN_SOURCES)
"""Keys whose problems are about secrets (not checked by commands that send nothing)."""
DEFAULT_HELD_AFTER = 600.0
DEFAULT_DIGEST_SECONDS = 30.0
DEFAULT_FLAP_SECONDS = 60.0

Found = tuple[str, str, str]  # key, message, hint
_VALID_EVENTS = frozenset(EventName)


@dataclass(frozen=True)
class Notify:
    held_after: float = DEFAULT_HELD_AFTER
    digest_seconds: float = DEFAULT_DIGEST_SECONDS
    flap_seconds: float = DEFAULT_FLAP_SECONDS
    targets: tuple[TargetSpec, ...] = ()


@dataclass(frozen=True)
class Http:
    listen: str
    token: str | None = field(default=None, repr=False)


def http_problems(
    section: Mapping[str, Any], base: Path, environ: Mapping[str, str] | None
) -> Iterator[Found]:
    """Every problem of the ``http`` section; the token is read only with ``environ``."""
    try:
        host, _port = parse_listen(str(section["listen"]))
    except ValueError as exc:
        yield "http.listen", str(exc), "e.g. 127.0.0.1:9187"
        return
    given = [key for key in TOKEN_SOURCES if key in section]
    if len(given) > 1:
        yield (
            "http.token",
            f"{', '.join(given)} are all set",
            "set one of token, token_file, token_env, token_credential",
        )
    elif not given and not is_loopback(host):
        hint = "set token_env (or token_file, token_credential), or listen on 127.0.0.1"
        yield "http.listen", f"{host} is reachable from other machines, so a token is required", hint
    elif given and environ is not None:
        try:
            _token(section, base, environ)
        except SecretError as exc:
            yield f"http.{exc.key}", exc.message, exc.hint


def _token(section: Mapping[str, Any], base: Path, environ: Mapping[str, str]) -> str:
    return read_secret(section, "token", base, environ, "HTTP token", "every request would be refused")


def build_http(
    section: Mapping[str, Any] | None, base: Path, environ: Mapping[str, str] | None
) -> Http | None:
    """The endpoint's settings, or None without the section (or for commands that serve nothing)."""
    if not section or environ is None:
        return None
    token = _token(section, base, environ) if any(k in section for k in TOKEN_SOURCES) else None
    return Http(listen=str(section["listen"]), token=token)


def problems(section: Mapping[str, Any], base: Path, environ: Mapping[str, str] | None) -> Iterator[Found]:
    """Every problem of the ``notify`` section; secrets are checked only with ``environ``."""
    names: set[str] = set()
    targets = section.get("targets") or []
    for index, target in enumerate(targets if isinstance(targets, list) else []):
        if not isinstance(target, Mapping):
            continue
        key = f"notify.targets[{index}]"
        name = target.get("name")
        if isinstance(name, str):
            if name in names:
                yield f"{key}.name", f"'{name}' is used twice", "give each target its own name"
            names.add(name)
        yield from _target_problems(target, key, base, environ)


def _target_problems(
    target: Mapping[str, Any], key: str, base: Path, environ: Mapping[str, str] | None
) -> Iterator[Found]:
    kinds = [kind for kind in KINDS if kind in target]
    if len(kinds) != 1:
        what = "none is set" if not kinds else f"{', '.join(kinds)} are all set"
        yield key, f"needs exactly one of {', '.join(KINDS)}; {what}", "one target sends one way"
        return
    for event in target.get("events") or []:
        if event not in _VALID_EVENTS:
            valid = ", ".join(EventName)
            yield f"{key}.events", f"unknown event {event!r}", f"valid events: {valid}"
    kind = kinds[0]
    if kind == "webhook":
        yield from _webhook_problems(str(target["webhook"]), f"{key}.webhook")
    elif kind == "command":
        yield from _command_problems(list(target["command"]), f"{key}.command", base)
    if ("headers" in target or "headers_env" in target) and kind != "webhook":
        yield f"{key}.headers", "headers are for webhook targets", "remove them, or make it a webhook"
    if environ is None:
        return
    try:
        url = _apprise_url(target, base, environ) if kind.startswith("apprise") else None
        _headers(target, environ)
    except SecretError as exc:
        yield f"{key}.{exc.key}", exc.message, exc.hint
        return
    if url is not None and (problem := apprise_problem(url)):
        yield f"{key}.{kind}", problem, "see the Apprise wiki for the URL of your service"


def _webhook_problems(url: str, key: str) -> Iterator[Found]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        yield key, "is not an http(s) URL", "e.g. http://127.0.0.1:8123/api/webhook/magnetd"


def _command_problems(argv: list[str], key: str, base: Path) -> Iterator[Found]:
    program = argv[0]
    found = shutil.which(program) if os.sep not in program else None
    path = Path(found) if found else resolve(program, base)
    if not (path.is_file() and os.access(path, os.X_OK)):
        yield key, f"{program!r} is not an executable file", "give the full path of an executable program"


def _apprise_url(target: Mapping[str, Any], base: Path, environ: Mapping[str, str]) -> str:
    if "apprise" in target:
        return str(target["apprise"])
    if "apprise_env" in target:
        return _env("apprise_env", str(target["apprise_env"]), environ)
    return read_file("apprise_file", resolve(str(target["apprise_file"]), base)) or _empty("apprise_file")


def _headers(target: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    headers = {str(k): str(v) for k, v in (target.get("headers") or {}).items()}
    for header, variable in (target.get("headers_env") or {}).items():
        headers[str(header)] = _env("headers_env", str(variable), environ)
    return headers


def _env(key: str, name: str, environ: Mapping[str, str]) -> str:
    value = environ.get(name)
    if not value:
        state = "is not set" if value is None else "is empty"
        raise SecretError(key, f"environment variable {name} {state}", "export it before starting magnetd")
    return value


def _empty(key: str) -> str:
    raise SecretError(key, "the file is empty", "write the secret into it (one line, mode 0600)")


def build(section: Mapping[str, Any] | None, base: Path, environ: Mapping[str, str] | None) -> Notify:
    """The notify settings; without ``environ`` (commands that send nothing) no targets."""
    if not section:
        return Notify()
    targets: tuple[TargetSpec, ...] = ()
    if environ is not None:
        targets = tuple(_spec(t, base, environ) for t in section.get("targets") or [])
    return Notify(
        held_after=float(section.get("held_after", DEFAULT_HELD_AFTER)),
        digest_seconds=float(section.get("digest_seconds", DEFAULT_DIGEST_SECONDS)),
        flap_seconds=float(section.get("flap_seconds", DEFAULT_FLAP_SECONDS)),
        targets=targets,
    )


def _spec(target: Mapping[str, Any], base: Path, environ: Mapping[str, str]) -> TargetSpec:
    events = target.get("events")
    apprise = None
    if any(k in target for k in ("apprise", "apprise_env", "apprise_file")):
        apprise = _apprise_url(target, base, environ)
    return TargetSpec(
        name=str(target["name"]),
        events=frozenset(EventName(e) for e in events) if events is not None else None,
        apprise=apprise,
        webhook=target.get("webhook"),
        headers=_headers(target, environ),
        command=tuple(target.get("command") or ()),
    )


def secrets(notify: Notify, http: Http | None) -> Iterator[str]:
    """The secret values of the targets and the endpoint, for the log's redaction."""
    if http is not None and http.token:
        yield http.token
    for spec in notify.targets:
        if spec.apprise:
            yield spec.apprise
        yield from spec.headers.values()
