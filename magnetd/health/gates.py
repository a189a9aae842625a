"""The VPN gates' checks: one small class per kind, each answering ``check() -> (GateStatus, detail)``.

- ``gateway``: an ICMP ping (:class:`~magnetd.health.gate.VpnGate`);
- ``interface``: the link has the IFF_UP flag and an address (WireGuard, tun and
  dummy links report operstate ``unknown``, never ``up``, so the flag is what counts);
- ``http``: a URL answers 2xx, and its body holds ``expect`` (gluetun's control server);
- ``public_ip_url``: the public address is not ``not_ip``, else LEAK.

A check that cannot tell (the public-IP service is unreachable) fails closed:
the gate is not UP. Details name the host and path, never a query string or a key.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Callable, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests

from magnetd.config import Vpn
from magnetd.health.gate import VpnGate
from magnetd.health.gatespec import CheckKind, GateSpec
from magnetd.model import GateStatus

Result = tuple[GateStatus, str]
QUICK_TIMEOUT = 1.0
"""Seconds a quick check (just before a batch goes to a VPN-bound instance) may take at most."""
BODY_LIMIT = 4096


class Check(Protocol):
    """One gate's check."""

    spec: GateSpec

    def check(self, quick: bool = False) -> Result: ...


class PingCheck:
    def __init__(self, spec: GateSpec, pinger: Callable[..., Any] | None = None) -> None:
        self.spec = spec
        self._gate = VpnGate(Vpn(spec.target, spec.timeout, spec.count), pinger)

    def check(self, quick: bool = False) -> Result:
        if quick:
            return self._gate.check(count=1, timeout=min(QUICK_TIMEOUT, self.spec.timeout))
        return self._gate.check()


class InterfaceCheck:
    def __init__(self, spec: GateSpec) -> None:
        self.spec = spec

    def check(self, quick: bool = False) -> Result:
        import psutil  # only with an interface gate: ~2 MB that other set-ups do without

        name = self.spec.target
        stats = psutil.net_if_stats().get(name)
        if stats is None:
            return GateStatus.DOWN, f"interface {name} does not exist"
        if not stats.isup:
            return GateStatus.DOWN, f"interface {name} is down"
        addresses = [a.address for a in psutil.net_if_addrs().get(name, []) if _routable(a.family, a.address)]
        if not addresses:
            return GateStatus.DOWN, f"interface {name} is up but holds no address"
        return GateStatus.UP, f"{name} {addresses[0]}"


def _routable(family: int, address: str) -> bool:
    """An IPv4 or IPv6 address other than link-local (fe80::, which any up link may get by itself)."""
    if family not in (socket.AF_INET, socket.AF_INET6):
        return False
    try:
        return not ipaddress.ip_address(address.split("%", 1)[0]).is_link_local
    except ValueError:
        return False


def where(url: str) -> str:
    """``host:port/path`` of ``url``: no credentials, no query string."""
    parts = urlsplit(url)
    return f"{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"


class _HttpBase:
    """A GET with the gate's API key (``X-API-Key``), on a kept-alive session."""

    def __init__(self, spec: GateSpec) -> None:
        self.spec = spec
        self._session = requests.Session()
        self._session.trust_env = False  # a local control server: never through a proxy
        if spec.api_key:
            self._session.headers["X-API-Key"] = spec.api_key

    def _get(self, quick: bool) -> requests.Response | Result:
        timeout = min(QUICK_TIMEOUT, self.spec.timeout) if quick else self.spec.timeout
        url = self.spec.target
        try:
            answer = self._session.get(url, timeout=timeout, allow_redirects=False)
        except requests.Timeout:
            return GateStatus.DOWN, f"{where(url)} did not answer within {timeout:g} s"
        except requests.ConnectionError:
            return GateStatus.DOWN, f"cannot connect to {where(url)}"
        except requests.RequestException as exc:
            return GateStatus.ERROR, f"{where(url)}: {type(exc).__name__}"
        if answer.status_code in (401, 403):
            hint = (
                "check api_key_env/api_key_file" if self.spec.api_key else "set api_key_env or api_key_file"
            )
            return GateStatus.ERROR, f"{where(url)} refused the request (HTTP {answer.status_code}): {hint}"
        if not 200 <= answer.status_code < 300:
            return GateStatus.DOWN, f"{where(url)} answered HTTP {answer.status_code}"
        return answer


class HttpCheck(_HttpBase):
    def check(self, quick: bool = False) -> Result:
        answer = self._get(quick)
        if isinstance(answer, tuple):
            return answer
        body = answer.text[:BODY_LIMIT]
        if self.spec.expect is not None and self.spec.expect not in body:
            return (
                GateStatus.DOWN,
                f"{where(self.spec.target)} says {_short(body)!r}, not {self.spec.expect!r}",
            )
        return GateStatus.UP, f"{where(self.spec.target)} answered {answer.status_code}"


class PublicIpCheck(_HttpBase):
    def check(self, quick: bool = False) -> Result:
        answer = self._get(quick)
        if isinstance(answer, tuple):
            return answer
        address = public_ip(answer.text[:BODY_LIMIT])
        if address is None:
            return (
                GateStatus.ERROR,
                f"{where(self.spec.target)} answered no IP address: {_short(answer.text)!r}",
            )
        if address == _normal(self.spec.not_ip or ""):
            return GateStatus.LEAK, f"public IP is {address}, the home address (not_ip): traffic would leak"
        return GateStatus.UP, f"public IP {address}"


def public_ip(body: str) -> str | None:
    """The address in a ``{"public_ip": ...}`` JSON answer (gluetun) or a plain-text one (ipify)."""
    text = body.strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = text
    if isinstance(data, dict):
        data = data.get("public_ip") or data.get("ip")
    return _normal(data) if isinstance(data, str) else None


def _normal(text: str) -> str | None:
    """``text`` as an IP address in its canonical form, or None."""
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


def _short(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= 60 else flat[:57] + "..."


def make(spec: GateSpec) -> Check:
    kinds: dict[CheckKind, Callable[[GateSpec], Check]] = {
        CheckKind.GATEWAY: PingCheck,
        CheckKind.INTERFACE: InterfaceCheck,
        CheckKind.HTTP: HttpCheck,
        CheckKind.PUBLIC_IP: PublicIpCheck,
    }
    return kinds[spec.check](spec)


class Gates:
    """Every configured gate's check, by name, in config order."""

    def __init__(self, specs: Sequence[GateSpec], make: Callable[[GateSpec], Check] = make) -> None:
        self.checks = {spec.name: make(spec) for spec in specs}

    @property
    def names(self) -> list[str]:
        return list(self.checks)

    def check(self, name: str, quick: bool = False) -> Result:
        return self.checks[name].check(quick)

    def close(self) -> None:
        for check in self.checks.values():
            session = getattr(check, "_session", None)
            if session is not None:
                session.close()
