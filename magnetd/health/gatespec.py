"""The ``vpn`` section and each instance's ``requires_vpn``: their rules, and the gates built from them.

``vpn`` is one gate (a mapping, as it always was) or a list of named gates;
each gate has exactly one check. A single mapping is named after what it
checks (its gateway address, interface name or URL host), so an old config's
gate keeps its name. Works on the parsed YAML after the schema accepted the
types, as :mod:`magnetd.config`'s own rules do: problems come back as
``(key, message, hint)``. The API key is read only when ``environ`` is given.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from magnetd.passwords import SecretError, read_secret

Found = tuple[str, str, str]  # key, message, hint

API_KEY_SOURCES = ("api_key_env", "api_key_file")
DEFAULT_RECHECK = 2.0


class CheckKind(StrEnum):
    """The one check a gate makes: named by its config key."""

    GATEWAY = "gateway"
    INTERFACE = "interface"
    HTTP = "http"
    PUBLIC_IP = "public_ip_url"


_ONLY_WITH = {"expect": CheckKind.HTTP, "not_ip": CheckKind.PUBLIC_IP, "count": CheckKind.GATEWAY}


@dataclass(frozen=True)
class GateSpec:
    """One configured gate."""

    name: str
    check: CheckKind
    target: str  # the gateway address, the interface name or the URL
    expect: str | None = None
    not_ip: str | None = None
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 2.0
    count: int = 2


def entries(vpn: Any) -> list[tuple[str, Mapping[str, Any]]]:
    """``(key, mapping)`` of each gate in the ``vpn`` section, whatever its form."""
    return [(key, gate) for _, key, gate in _located(vpn)]


def _located(vpn: Any) -> list[tuple[tuple[Any, ...], str, Mapping[str, Any]]]:
    """``(schema path, key, mapping)`` of each gate."""
    if isinstance(vpn, Mapping):
        return [(("vpn",), "vpn", vpn)]
    if isinstance(vpn, list):
        return [(("vpn", i), f"vpn[{i}]", gate) for i, gate in enumerate(vpn) if isinstance(gate, Mapping)]
    return []


def checks_of(gate: Mapping[str, Any]) -> list[CheckKind]:
    return [kind for kind in CheckKind if kind in gate]


def name_of(gate: Mapping[str, Any]) -> str:
    """The gate's name: given, or what it checks (a single mapping's gateway keeps its old name)."""
    if "name" in gate:
        return str(gate["name"])
    kinds = checks_of(gate)
    if not kinds:
        return "vpn"
    target = str(gate[kinds[0]])
    return urlsplit(target).netloc or target if kinds[0] in (CheckKind.HTTP, CheckKind.PUBLIC_IP) else target


def names(vpn: Any) -> list[str]:
    return [name_of(gate) for _, gate in entries(vpn)]


def problems(
    raw: Mapping[str, Any],
    base: Path,
    environ: Mapping[str, str] | None,
    accepted: Callable[..., bool] = lambda *key: True,
) -> Iterator[Found]:
    """Every problem of ``vpn`` and of the instances' ``requires_vpn`` the schema cannot see.

    ``accepted("vpn")`` tells whether the schema found nothing wrong at or below a key.
    """
    vpn = raw.get("vpn")
    seen: set[str] = set()
    for path, key, gate in _located(vpn):
        if not accepted(*path):
            continue  # the schema already said what is wrong with it
        yield from _gate_problems(key, gate, base, environ)
        name = name_of(gate)
        if name in seen:
            yield f"{key}.name", f"'{name}' is used twice", "give each gate its own name"
        seen.add(name)
        if isinstance(vpn, list) and ("reconnect_command" in gate or "reconnect_wait" in gate):
            hint = "reconnect_command works with a single gate: write vpn as one mapping"
            yield f"{key}.reconnect_command", "is not supported in a list of gates", hint
    instances = raw.get("instances")
    for index, inst in enumerate(instances if isinstance(instances, list) else []):
        if isinstance(inst, Mapping) and accepted("instances", index, "requires_vpn"):
            yield from _requires_problems(f"instances[{index}]", inst.get("requires_vpn"), seen)


def _gate_problems(
    key: str, gate: Mapping[str, Any], base: Path, environ: Mapping[str, str] | None
) -> Iterator[Found]:
    kinds = checks_of(gate)
    if len(kinds) != 1:
        what = "none is set" if not kinds else f"{', '.join(kinds)} are all set"
        hint = "give each gate exactly one of gateway, interface, http, public_ip_url (a list holds several)"
        yield key, f"needs exactly one check; {what}", hint
        return
    for option, kind in _ONLY_WITH.items():
        if option in gate and kinds[0] != kind:
            yield f"{key}.{option}", f"only goes with {kind}", f"remove it, or use a {kind} check"
    if kinds[0] == CheckKind.PUBLIC_IP and "not_ip" not in gate:
        yield f"{key}.not_ip", "is required with public_ip_url", "set it to your home (non-VPN) address"
    if isinstance(gate.get("not_ip"), str) and not _is_address(gate["not_ip"]):
        yield f"{key}.not_ip", f"{gate['not_ip']!r} is not an IP address", "e.g. 203.0.113.7"
    given = [source for source in API_KEY_SOURCES if source in gate]
    if given and kinds[0] not in (CheckKind.HTTP, CheckKind.PUBLIC_IP):
        yield f"{key}.{given[0]}", "only goes with http or public_ip_url", "remove it"
    elif len(given) > 1:
        yield f"{key}.api_key", f"{', '.join(given)} are all set", "set one of api_key_env, api_key_file"
    elif given and environ is not None:
        try:
            _api_key(gate, base, environ)
        except SecretError as exc:
            yield f"{key}.{exc.key}", exc.message, exc.hint


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip())
    except ValueError:
        return False
    return True


def _requires_problems(key: str, requires: Any, gates: set[str]) -> Iterator[Found]:
    wanted = [requires] if isinstance(requires, str) else requires if isinstance(requires, list) else []
    for name in wanted:
        if isinstance(name, str) and name not in gates:
            known = ", ".join(sorted(gates)) or "none: add a vpn section"
            yield (
                f"{key}.requires_vpn",
                f"names the gate '{name}', which is not configured",
                f"gates: {known}",
            )
    if requires is True and not gates:
        yield f"{key}.requires_vpn", "is true but no vpn gate is configured", "add a vpn section"


def _api_key(gate: Mapping[str, Any], base: Path, environ: Mapping[str, str]) -> str:
    return read_secret(gate, "api_key", base, environ, "API key", "the control server would refuse it")


def build(vpn: Any, base: Path, environ: Mapping[str, str] | None) -> tuple[GateSpec, ...]:
    """The gates of a ``vpn`` section that passed :func:`problems`; API keys read only with ``environ``."""
    specs = []
    for _, gate in entries(vpn):
        kind = checks_of(gate)[0]
        has_key = any(source in gate for source in API_KEY_SOURCES)
        specs.append(
            GateSpec(
                name=name_of(gate),
                check=kind,
                target=str(gate[kind]),
                expect=gate.get("expect"),
                not_ip=gate.get("not_ip"),
                api_key=_api_key(gate, base, environ) if has_key and environ is not None else None,
                timeout=float(gate.get("timeout", 2.0)),
                count=int(gate.get("count", 2)),
            )
        )
    return tuple(specs)


def required(requires: Any, gates: Sequence[GateSpec]) -> frozenset[str]:
    """The gate names an instance's ``requires_vpn`` stands for: true is every gate."""
    if requires is True:
        return frozenset(g.name for g in gates)
    if isinstance(requires, str):
        return frozenset([requires])
    if isinstance(requires, list):
        return frozenset(str(name) for name in requires)
    return frozenset()


def recheck_interval(raw: Mapping[str, Any], probe_interval: float) -> float:
    """``recheck_interval``: given, or 2 s, or ``probe_interval`` where that is shorter."""
    return float(raw.get("recheck_interval", min(DEFAULT_RECHECK, probe_interval)))
