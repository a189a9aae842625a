"""A VPN gateway test host: a second network namespace behind a veth pair.

The test process already runs in its own private namespace (see conftest.py);
this adds a peer namespace holding the "gateway" address, which a test cuts
and restores with ``ip link set ... down/up``. Only addresses inside these
namespaces are ever pinged.
"""

from __future__ import annotations

import os
import subprocess

from tests.realparts import need_program, need_root


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


class Gateway:
    """``10.231.<n>.2`` in namespace ``magnetd-gw-<pid>``, reached over ``mgw<n>`` from here."""

    def __init__(self, index: int = 0) -> None:
        self.namespace = f"magnetd-gw-{os.getpid()}-{index}"
        self.local_if, self.remote_if = f"mgw{index}a", f"mgw{index}b"
        self.local_addr = f"10.231.{index}.1"
        self.address = f"10.231.{index}.2"

    def create(self) -> Gateway:
        need_root("a gateway test host in a network namespace")
        need_program("ip")
        ip("netns", "add", self.namespace)
        ip(
            "link",
            "add",
            self.local_if,
            "type",
            "veth",
            "peer",
            "name",
            self.remote_if,
            "netns",
            self.namespace,
        )
        ip("addr", "add", f"{self.local_addr}/30", "dev", self.local_if)
        ip("link", "set", self.local_if, "up")
        self._in_ns("addr", "add", f"{self.address}/30", "dev", self.remote_if)
        self._in_ns("link", "set", self.remote_if, "up")
        self._in_ns("link", "set", "lo", "up")
        return self

    def _in_ns(self, *args: str) -> None:
        ip("-n", self.namespace, *args)

    def down(self) -> None:
        """Cut the gateway: its side of the link goes down, pings go unanswered."""
        self._in_ns("link", "set", self.remote_if, "down")

    def up(self) -> None:
        self._in_ns("link", "set", self.remote_if, "up")

    def delete(self) -> None:
        subprocess.run(["ip", "link", "del", self.local_if], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "delete", self.namespace], check=False, capture_output=True)
