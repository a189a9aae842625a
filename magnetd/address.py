"""Addresses: the status endpoint's ``http.listen`` parsed, and whether a host is only this machine.

Pure, and free of the server's imports, so that check-config can use it; the
transport asks it whether a qBittorrent instance is on this machine.
"""

from __future__ import annotations

import ipaddress


def parse_listen(text: str) -> tuple[str, int]:
    """``127.0.0.1:9187`` → ``("127.0.0.1", 9187)``; IPv6 in brackets: ``[::1]:9187``."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host:
        raise ValueError(f"{text!r}: expected HOST:PORT, e.g. 127.0.0.1:9187 or [::1]:9187")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        ipaddress.IPv6Address(host)  # ValueError if not
    elif ":" in host:
        raise ValueError(f"{text!r}: write an IPv6 address in brackets, e.g. [::1]:9187")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: the port must be a number from 0 to 65535")
    return host, int(port)


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # another name: it may resolve anywhere
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback
