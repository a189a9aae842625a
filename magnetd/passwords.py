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
TOKEN_SOURCES = ("token", "token_file", "token_env", "token_credential")

LITERAL_SECRETS = frozenset({"password", "apprise", "headers", "token"})
"""Config keys whose value is itself a secret; a new one (``token``, ``api_key``) joins by being listed."""

SAFER_SOURCES = "password_file, password_env or a systemd credential (password_credential)"


def sources(prefix: str) -> tuple[str, str, str, str]:
    """The keys a secret ``prefix`` may come from: itself, ``_file``, ``_env``, ``_credential``."""
    return (prefix, f"{prefix}_file", f"{prefix}_env", f"{prefix}_credential")


def _hints(prefix: str, what: str) -> dict[str, str]:
    """How to fix each source of the secret ``prefix`` (a ``what``), and (``:empty``) an empty one."""
    literal, file, env, credential = sources(prefix)
    safer = f"{file}, {env} or a systemd credential ({credential})"
    return {
        literal: f"write the {what} here, or better use {safer}",
        file: f"create the file (mode 0600) holding only the {what}",
        env: (
            "export the variable before starting magnetd; under systemd set it with EnvironmentFile=,"
            f" or use {credential} (LoadCredential=)"
        ),
        credential: "add LoadCredential= for it to the systemd unit",
        f"{file}:empty": f"write the {what} into the file (one line, mode 0600)",
        f"{credential}:empty": f"write the {what} into the file that LoadCredential= names",
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


def source_key(node: Mapping[str, Any], prefix: str = "password") -> str:
    """The source a secret comes from (the first present; the rules insist on exactly one)."""
    return next((key for key in sources(prefix) if key in node), prefix)


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
    return read_secret(inst, "password", base, environ, "WebUI password", "magnetd could never log in")


def read_secret(
    node: Mapping[str, Any], prefix: str, base: Path, environ: Mapping[str, str], what: str, empty: str
) -> str:
    """A secret from ``prefix`` or one of its sources; :class:`SecretError` when missing or empty.

    ``what`` names it in hints (``WebUI password``), ``empty`` says why an empty one is wrong.
    """
    key, hints = source_key(node, prefix), _hints(prefix, what)
    literal, file, env, _credential = sources(prefix)
    if key == literal:
        secret, where = str(node[key]), f"the {prefix}"
    elif key == env:
        name = node[key]
        if name not in environ:
            raise SecretError(key, f"environment variable {name} is not set", hints[key])
        secret, where = environ[name], f"environment variable {name}"
    elif key == file:
        path = resolve(node[key], base)
        secret, where = read_file(key, path, hints[key]), str(path)
    else:
        directory = environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            message = "$CREDENTIALS_DIRECTORY is not set (not started by systemd?)"
            raise SecretError(key, message, hints[key])
        path = Path(directory) / node[key]
        secret, where = read_file(key, path, hints[key]), f"credential {node[key]} ({path})"
    if not secret:
        raise SecretError(key, f"{where} is empty: {empty}", hints.get(f"{key}:empty", hints[key]))
    return secret


def read_file(key: str, path: Path, hint: str = "check the file exists and magnetd may read it") -> str:
    """A secret file's text without its line end; :class:`SecretError` naming ``key`` if unreadable."""
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SecretError(key, f"cannot read {path}: {why}", hint) from None


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
