"""Run a real, throw-away ``qbittorrent-nox`` for tests.

:class:`Qbt` writes a profile under a test folder (WebUI on 127.0.0.1 only,
BitTorrent bound to ``lo``, DHT/LSD/PeX/UPnP/GeoIP off, new torrents paused),
starts ``qbittorrent-nox`` with ``HOME`` pointing into that folder, and waits
until its WebAPI answers. :class:`QbtApi` is a deliberately separate, tiny
WebAPI client, so tests can check ``magnetd.delivery.qbittorrent`` against something
that does not share its code.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO, Any

import requests

from tests.realparts import missing, need_program, need_root

SID_WRAPPER = Path(__file__).resolve().parent.parent / "scripts" / "qbt-sid"
"""Runs the qbittorrent-nox of the Debian unstable root (``scripts/sid-root``) through chroot."""
BUILDS = {"4.5": "qbittorrent-nox", "system": "qbittorrent-nox", "5.3": str(SID_WRAPPER)}
"""``MAGNETD_QBT`` values: the host's qbittorrent-nox (Debian 12: 4.5.2), or 5.3 from Debian unstable."""


def chosen_build() -> str:
    """Which qBittorrent the suite runs against: ``MAGNETD_QBT`` (``system``, the default, or ``5.3``)."""
    build = os.environ.get("MAGNETD_QBT", "").strip() or "system"
    if build not in BUILDS:
        raise ValueError(f"MAGNETD_QBT={build!r}: expected one of {', '.join(sorted(BUILDS))}")
    return build


PROGRAM = BUILDS[chosen_build()]
"""The command that starts the chosen ``qbittorrent-nox``."""
_checked: dict[str, str] = {}


def need_qbt() -> str:
    """The chosen qbittorrent-nox's command, or a skip (a failure in CI) saying what is missing."""
    if str(SID_WRAPPER) != PROGRAM:
        return need_program(PROGRAM)
    need_root("qBittorrent from the Debian unstable root (chroot)")
    if PROGRAM not in _checked:
        done = subprocess.run([PROGRAM, "--version"], capture_output=True, text=True, timeout=60)
        _checked[PROGRAM] = done.stdout.strip() if done.returncode == 0 else ""
        if not _checked[PROGRAM]:
            why = done.stderr.strip()[-300:]
            missing(f"MAGNETD_QBT=5.3 but {PROGRAM} does not run (build it: scripts/sid-root): {why}")
    if not _checked[PROGRAM]:
        missing(f"MAGNETD_QBT=5.3 but {PROGRAM} does not run (build the root: scripts/sid-root)")
    return PROGRAM


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def password_pbkdf2(password: str) -> str:
    """qBittorrent's ``WebUI\\Password_PBKDF2`` value for ``password``."""
    salt = secrets.token_bytes(16)
    key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 100_000, 64)
    salt64, key64 = base64.b64encode(salt).decode(), base64.b64encode(key).decode()
    return f'"@ByteArray({salt64}:{key64})"'


def profile_config(
    web_port: int, bt_port: int, username: str, password: str, host_header_validation: bool = True
) -> str:
    """The ``qBittorrent.conf`` of a test instance that talks to nothing but loopback."""
    return f"""\
[LegalNotice]
Accepted=true

[BitTorrent]
Session\\DHTEnabled=false
Session\\LSDEnabled=false
Session\\PeXEnabled=false
Session\\AddTorrentPaused=true
Session\\Port={bt_port}
Session\\Interface=lo
Session\\InterfaceName=lo
Session\\InterfaceAddress=127.0.0.1

[Network]
PortForwardingEnabled=false

[Preferences]
WebUI\\Address=127.0.0.1
WebUI\\Port={web_port}
WebUI\\Username={username}
WebUI\\Password_PBKDF2={password_pbkdf2(password)}
WebUI\\LocalHostAuth=true
WebUI\\CSRFProtection=true
WebUI\\HostHeaderValidation={str(host_header_validation).lower()}
WebUI\\UseUPnP=false
General\\Locale=en
Connection\\UPnP=false
Connection\\ResolvePeerCountries=false
"""


class QbtApi:
    """A minimal WebAPI v2 client for test checks (independent of magnetd)."""

    def __init__(self, url: str, username: str, password: str, log_file: Path) -> None:
        self.url = url
        self.username = username
        self.password = password
        self.log_file = log_file
        self.session = requests.Session()

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One request to ``api/v2/<path>``, raising on an HTTP error status."""
        response = self.session.request(method, f"{self.url}api/v2/{path}", timeout=10, **kwargs)
        response.raise_for_status()
        return response

    def login(self, password: str | None = None) -> bool:
        """Log in (with ``password`` if given); whether qBittorrent said yes."""
        form = {
            "username": self.username,
            "password": self.password if password is None else password,
        }
        response = self.session.post(f"{self.url}api/v2/auth/login", data=form, timeout=10)
        return response.status_code == 204 or response.text.strip() == "Ok."

    def version(self) -> str:
        """``app/webapiVersion``."""
        return self.request("GET", "app/webapiVersion").text.strip()

    def webapi(self) -> tuple[int, ...]:
        """``app/webapiVersion`` as numbers, to compare: ``(2, 8, 19)`` on 4.5.2, ``(2, 16, 2)`` on 5.3.0."""
        return tuple(int(part) for part in self.version().split("."))

    def torrents(self, **filters: str) -> list[dict[str, Any]]:
        """``torrents/info`` with the given filters (``hashes``, ``category``, ...)."""
        data: list[dict[str, Any]] = self.request("POST", "torrents/info", data=filters).json()
        return data

    def log_main(self, last_known_id: int = -1) -> list[dict[str, Any]]:
        """``log/main`` entries newer than ``last_known_id``."""
        params = {"last_known_id": str(last_known_id)}
        data: list[dict[str, Any]] = self.request("GET", "log/main", params=params).json()
        return data

    def add_magnet(self, uri: str, **fields: str) -> str:
        """Add one magnet link; qBittorrent's answer text."""
        form = {"urls": uri, **fields}
        return self.request("POST", "torrents/add", data=form).text.strip()

    def log_text(self) -> str:
        """The whole log file so far ("" if it does not exist yet)."""
        try:
            return self.log_file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""


class Qbt:
    """One throw-away ``qbittorrent-nox`` with its profile under ``root``."""

    def __init__(
        self,
        root: Path,
        port: int | None = None,
        username: str = "admin",
        password: str = "magnetd-test-pass",
        *,
        program: str = PROGRAM,
        host_header_validation: bool = True,
    ) -> None:
        self.root = Path(root)
        self.port = port or free_port()
        self.username = username
        self.password = password
        self.program = program
        self.host_header_validation = host_header_validation  # off when reached through a relay
        self.url = f"http://127.0.0.1:{self.port}/"
        self.config_file = self.root / "qBittorrent" / "config" / "qBittorrent.conf"
        self.log_file = self.root / "qBittorrent" / "data" / "logs" / "qbittorrent.log"
        self.output_file = self.root / "qbittorrent-nox.out"
        self.process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None

    def __enter__(self) -> Qbt:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def api(self) -> QbtApi:
        """A fresh test client for this instance (not yet logged in)."""
        return QbtApi(self.url, self.username, self.password, self.log_file)

    def write_config(self) -> None:
        """Write the profile's ``qBittorrent.conf``."""
        bt_port = free_port()
        while bt_port == self.port:
            bt_port = free_port()
        self.config_file.parent.mkdir(parents=True, exist_ok=True)
        text = profile_config(self.port, bt_port, self.username, self.password, self.host_header_validation)
        self.config_file.write_text(text, encoding="utf-8")

    def environment(self) -> dict[str, str]:
        """A clean environment: C.UTF-8, ``HOME`` inside ``root``, no ``QBT_*``."""
        env = {"LANG": "C.UTF-8", "HOME": str(self.root), "PATH": os.environ.get("PATH", "")}
        if "MAGNETD_SID_ROOT" in os.environ:  # where scripts/qbt-sid finds the Debian unstable root
            env["MAGNETD_SID_ROOT"] = os.environ["MAGNETD_SID_ROOT"]
        return env

    def start(self, timeout: float = 30) -> None:
        """Start the instance and wait until a login and ``app/webapiVersion`` work."""
        if self.process is not None:
            raise RuntimeError("qbittorrent-nox is already running")
        self.root.mkdir(parents=True, exist_ok=True)
        self.write_config()
        self._output = self.output_file.open("ab")
        command = [self.program, f"--profile={self.root}", f"--webui-port={self.port}"]
        self.process = subprocess.Popen(
            command,
            env=self.environment(),
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.kill()
            raise

    def _wait_ready(self, timeout: float) -> None:
        """Poll until the WebAPI answers a logged-in request."""
        deadline = time.monotonic() + timeout
        api = self.api()
        while True:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"qbittorrent-nox exited early: {self.output()[-2000:]}")
            try:
                if api.login():
                    api.version()
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"qbittorrent-nox did not answer within {timeout} s")
            time.sleep(0.2)

    def output(self) -> str:
        """What the process printed so far."""
        try:
            return self.output_file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        """SIGTERM, wait up to 10 s, then SIGKILL."""
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._forget()

    def kill(self) -> None:
        """SIGKILL at once."""
        process = self.process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        self._forget()

    def _forget(self) -> None:
        self.process = None
        if self._output is not None:
            self._output.close()
            self._output = None
