"""An instance's WebUI API key (qBittorrent 5.2+): ``api_key_env`` or ``api_key_file``.

An instance authenticates with ``username`` and one password source, or with
one API key source instead: the key is sent as ``Authorization: Bearer`` on
every request and there is no login. This module reads the key, names its
source for messages, and says what is wrong with an instance's auth keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from magnetd.passwords import PASSWORD_SOURCES, SecretError, read_secret, resolve

API_KEY_SOURCES = ("api_key_env", "api_key_file")
HINT = "set one of api_key_env, api_key_file (qBittorrent 5.2+: POST app/rotateAPIKey makes a key)"


def used(inst: Mapping[str, Any]) -> bool:
    """Whether the instance authenticates with an API key."""
    return any(key in inst for key in API_KEY_SOURCES)


def source_key(inst: Mapping[str, Any]) -> str:
    """``api_key_env`` or ``api_key_file``: where the key comes from."""
    return next(key for key in API_KEY_SOURCES if key in inst)


def read(inst: Mapping[str, Any], base: Path, environ: Mapping[str, str]) -> str:
    """The key; :class:`~magnetd.passwords.SecretError` when its source is missing or empty."""
    return read_secret(inst, "api_key", base, environ, "WebUI API key", "qBittorrent would refuse it")


def origin(inst: Mapping[str, Any], base: Path) -> str:
    """Where the key comes from, for messages: ``api_key_env QBT_API_KEY``; never the key."""
    key = source_key(inst)
    return f"{key} {resolve(inst[key], base) if key == 'api_key_file' else inst[key]}"


def key_file(inst: Mapping[str, Any], base: Path) -> Path | None:
    """The file the key is read from (watched, like a password file, while it is refused)."""
    return resolve(inst["api_key_file"], base) if "api_key_file" in inst else None


def problems(
    inst: Mapping[str, Any], key: str, accepted: Callable[[str], bool], base: Path, environ: Mapping[str, str]
) -> Iterator[tuple[str, str, str]]:
    """(key path, message, hint) for each mistake in an API-key instance's auth keys."""
    given = [s for s in API_KEY_SOURCES if s in inst]
    passwords = [s for s in PASSWORD_SOURCES if s in inst]
    if len(given) > 1:
        yield f"{key}.api_key", f"{', '.join(given)} are all set", HINT
        return
    if passwords:
        message = f"{given[0]} and {', '.join(passwords)} are both set"
        yield (
            f"{key}.{given[0]}",
            message,
            "an API key replaces the login: drop the password source or the key",
        )
        return
    if not accepted(given[0]):
        return  # the schema already said what is wrong with it
    try:
        read(inst, base, environ)
    except SecretError as exc:
        yield f"{key}.{exc.key}", exc.message, exc.hint


def auth_fields(
    inst: Mapping[str, Any], base: Path, config: Path, environ: Mapping[str, str] | None
) -> dict[str, Any]:
    """An :class:`~magnetd.config.Instance`'s auth fields; secrets are left empty when ``environ`` is None."""
    from magnetd import passwords

    if not used(inst):
        return {
            "username": inst.get("username", ""),
            "password": passwords.read_password(inst, base, environ) if environ is not None else "",
            "password_source": passwords.source_key(inst) if environ is not None else "",
            "password_from": passwords.origin(inst, base, config),
            "password_file": passwords.password_file(inst, base),
        }
    return {
        "username": inst.get("username", ""),
        "api_key": read(inst, base, environ) if environ is not None else "",
        "password_source": source_key(inst) if environ is not None else "",
        "password_from": origin(inst, base),
        "password_file": key_file(inst, base),
    }
