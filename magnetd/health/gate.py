"""The VPN gate: is the VPN up? Today one check, an ICMP ping of its gateway."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from magnetd.config import Vpn
from magnetd.model import GateStatus

PING_FIX = (
    "magnetd may not send ICMP: run it with CAP_NET_RAW (AmbientCapabilities=CAP_NET_RAW in the"
    " systemd unit) or allow unprivileged ping for its group: sysctl net.ipv4.ping_group_range"
    "='0 2147483647'; on Windows run the service as an account allowed raw sockets"
)
PING_INTERVAL = 0.2  # seconds between the pings of one check: a lost packet costs little time


class VpnGate:
    """Pings the VPN gateway; remembers whether a privileged or unprivileged socket works."""

    def __init__(self, vpn: Vpn, pinger: Callable[..., Any] | None = None) -> None:
        self.vpn = vpn
        self._pinger = pinger
        self._modes: list[bool] = [True, False]

    def check(self, count: int | None = None, timeout: float | None = None) -> tuple[GateStatus, str]:
        """``(status, detail)``: UP, DOWN or PING_NOT_PERMITTED."""
        import icmplib  # imported here: only a configured gate needs it

        ping = self._pinger or icmplib.ping
        for privileged in list(self._modes):
            try:
                host = ping(
                    self.vpn.gateway,
                    count=count or self.vpn.count,
                    interval=PING_INTERVAL,
                    timeout=timeout or self.vpn.timeout,
                    privileged=privileged,
                )
            except icmplib.SocketPermissionError:
                continue
            except icmplib.NameLookupError:
                return GateStatus.DOWN, f"cannot resolve {self.vpn.gateway}"
            except (icmplib.ICMPLibError, OSError) as exc:
                return GateStatus.DOWN, f"ping failed: {exc}"
            self._modes = [privileged]
            if host.is_alive:
                return GateStatus.UP, f"rtt {host.avg_rtt:.1f} ms"
            return GateStatus.DOWN, f"no answer from {self.vpn.gateway} ({host.packets_sent} pings)"
        return GateStatus.PING_NOT_PERMITTED, PING_FIX
