"""Where each instance's password comes from: read it, name its source, and warn when it shows.

An instance takes exactly one of :data:`PASSWORD_SOURCES`. A source that is
missing or empty is a config error (the daemon could never log in), raised as
:class:`SecretError` with a hint. A secret written in the config itself
(any key of :data:`LITERAL_SECRETS`) is warned about when other users can read
the file, as ssh does for private keys.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

PASSWORD_SOURCES = ("password", "password_file", "password_env", "password_credential")

LITERAL_SECRETS = frozenset({"password", "apprise", "headers"})
"""Config keys whose value is itself a secret; a new one (``token``, ``api_key``) joins by being listed."""

SAFER_SOURCES = "password_file, password_env or a systemd credential (password_credential)"

_HINTS = {
    "password": f"write the WebUI password here, or better use {SAFER_SOURCES}",
    "password_file": "create the file (mode 0600) holding only the password",
    "password_env": (
        "export the variable before starting magnetd; under systemd set it with EnvironmentFile=,"
        " or use password_credential (LoadCredential=)"
    ),
    "password_credential": "add LoadCredential= for it to the systemd unit",
}
_EMPTY_HINTS = {
    **_HINTS,
    "password_file": "write the WebUI password into the file (one line, mode 0600)",
    "password_credential": "write the WebUI password into the file that LoadCredential= names",
}


class SecretError(LookupError):
    """A password source that cannot give a password: ``key`` is the source, ``hint`` the fix."""

    def __init__(self, key: str, message: str, hint: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message
        self.hint = hint


def resolve(value: str, base: Path) -> Path:
    """``value`` as a path; relative paths resolve against ``base`` (the config's folder)."""
    path = Path(value)
    with contextlib.suppress(RuntimeError):  # ~user that does not exist: kept, reading it will fail
        path = path.expanduser()
    return path if path.is_absolute() else base / path


def source_key(inst: Mapping[str, Any]) -> str:
    """The password source an instance uses (the first present; the rules insist on exactly one)."""
    return next((key for key in PASSWORD_SOURCES if key in inst), "password")


def origin(inst: Mapping[str, Any], base: Path, config: Path) -> str:
    """Where the password comes from, for messages: ``password_env QBT_PASSWORD``; never the password."""
    key = source_key(inst)
    if key == "password":
        return f"password in {config}"
    if key == "password_file":
        return f"password_file {resolve(inst[key], base)}"
    return f"{key} {inst[key]}"


def password_file(inst: Mapping[str, Any], base: Path) -> Path | None:
    """The file the password is read from, when magnetd may read it again (``password_file``)."""
    return resolve(inst["password_file"], base) if "password_file" in inst else None


def read_password(inst: Mapping[str, Any], base: Path, environ: Mapping[str, str]) -> str:
    """The password; :class:`SecretError` when its source is missing or empty."""
    key = source_key(inst)
    if key == "password":
        password, what = str(inst[key]), "the password"
    elif key == "password_env":
        name = inst[key]
        if name not in environ:
            raise SecretError(key, f"environment variable {name} is not set", _HINTS[key])
        password, what = environ[name], f"environment variable {name}"
    elif key == "password_file":
        path = resolve(inst[key], base)
        password, what = read_file(key, path), str(path)
    else:
        directory = environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            message = "$CREDENTIALS_DIRECTORY is not set (not started by systemd?)"
            raise SecretError(key, message, _HINTS[key])
        path = Path(directory) / inst[key]
        password, what = read_file(key, path), f"credential {inst[key]} ({path})"
    if not password:
        raise SecretError(key, f"{what} is empty: magnetd could never log in", _EMPTY_HINTS[key])
    return password


def read_file(key: str, path: Path) -> str:
    """A secret file's text without its line end; :class:`SecretError` naming ``key`` if unreadable."""
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SecretError(key, f"cannot read {path}: {why}", _HINTS[key]) from None


def literal_secrets(node: Any, key: str = "") -> Iterator[str]:
    """The key paths (``instances[0].password``) of secrets written in the config itself."""
    if isinstance(node, Mapping):
        for name, value in node.items():
            path = f"{key}.{name}" if key else str(name)
            if name in LITERAL_SECRETS and value not in (None, "", [], {}):
                yield path
            else:
                yield from literal_secrets(value, path)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from literal_secrets(value, f"{key}[{index}]")


def open_mode(path: Path) -> int | None:
    """``path``'s permission bits when users other than the owner may read it, else None.

    Never on Windows, where access is set by ACLs, not by these bits.
    """
    if sys.platform == "win32":
        return None
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return None
    return mode if mode & 0o044 else None


def exposure_warnings(raw: Mapping[str, Any], config: Path) -> Iterator[str]:
    """Warnings for secrets other users can read: in ``config`` itself, or in a password file."""
    keys = list(literal_secrets(raw))
    mode = open_mode(config) if keys else None
    if mode is not None:
        yield (
            f"{config} holds a secret ({', '.join(keys)}) and other users can read it (mode {mode:o}):"
            f" chmod 600 {config}, or use {SAFER_SOURCES}"
        )
    for inst in raw.get("instances") or []:
        path = password_file(inst, config.parent) if isinstance(inst, Mapping) else None
        mode = open_mode(path) if path is not None else None
        if path is not None and mode is not None:
            yield f"password_file {path} can be read by other users (mode {mode:o}): chmod 600 {path}"
