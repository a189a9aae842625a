"""The magnet: link handlers: the Linux desktop entry (validated, launched by gio) and the Windows files."""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from magnetd.cli import build_parser
from tests.daemon import wait_for
from tests.realparts import missing, need_program

ROOT = Path(__file__).resolve().parents[2]
DESKTOP = ROOT / "packaging" / "linux" / "magnetd.desktop"
WINDOWS = ROOT / "packaging" / "windows"
MAGNET = "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&dn=a%20b&tr=udp%3A%2F%2Fx%3A1"
DEFAULT_EXE = r"C:\Program Files\magnetd\Scripts\magnetd.exe"
DEFAULT_CONFIG = r"C:\ProgramData\magnetd\magnetd.yaml"


class CaseSensitiveParser(configparser.ConfigParser):
    """A desktop entry's keys are case-sensitive: keep them as written."""

    def optionxform(self, optionstr: str) -> str:
        return optionstr


def desktop_entry() -> configparser.SectionProxy:
    parser = CaseSensitiveParser(interpolation=None, delimiters=("=",))
    parser.read(DESKTOP, encoding="utf-8")
    return parser["Desktop Entry"]


def test_desktop_file_validates() -> None:
    validate = need_program("desktop-file-validate")
    result = subprocess.run([validate, str(DESKTOP)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "", result.stdout  # no hints or warnings either


def test_desktop_entry_handles_the_magnet_scheme() -> None:
    entry = desktop_entry()
    assert "x-scheme-handler/magnet" in entry["MimeType"].split(";")
    assert entry["Exec"] == "magnetd add %u"  # %u: one URL, passed as a single argument
    assert entry["NoDisplay"] == "true" and entry["Terminal"] == "false"
    args = shlex.split(entry["Exec"].replace("%u", shlex.quote(MAGNET)))
    assert build_parser().parse_args(args[1:]).links == [MAGNET]


def test_gio_opens_a_magnet_link_into_the_inbox(tmp_path: Path) -> None:
    """As a browser does: gio finds the default handler in mimeapps.list and runs `magnetd add`."""
    gio = need_program("gio")
    update = need_program("update-desktop-database")
    magnetd = Path(sys.executable).parent / "magnetd"
    if not magnetd.exists():
        missing(f"{magnetd} is not installed (pip install -e .)")
    apps, conf = tmp_path / "data" / "applications", tmp_path / "config"
    apps.mkdir(parents=True)
    conf.mkdir()
    shutil.copy(DESKTOP, apps)
    subprocess.run([update, str(apps)], check=True)
    assert "x-scheme-handler/magnet=magnetd.desktop;" in (apps / "mimeinfo.cache").read_text(encoding="utf-8")
    # what `xdg-mime default magnetd.desktop x-scheme-handler/magnet` writes:
    (conf / "mimeapps.list").write_text(
        "[Default Applications]\nx-scheme-handler/magnet=magnetd.desktop\n", encoding="utf-8"
    )
    config = tmp_path / "magnetd.yaml"
    config.write_text(
        "folders: {inbox: ./inbox, sent: ./sent, failed: ./failed}\n"
        "instances: [{name: a, url: 'http://127.0.0.1:1/', username: u, password: p}]\n",
        encoding="utf-8",
    )
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_DATA_DIRS": str(tmp_path / "none"),
        "XDG_CONFIG_HOME": str(conf),
        "PATH": f"{magnetd.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "MAGNETD_CONFIG": str(config),
    }
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    subprocess.run([gio, "open", MAGNET], env=env, check=True, timeout=30)
    inbox = tmp_path / "inbox"
    (dropped,) = wait_for(lambda: list(inbox.glob("*.magnet")), 20, "magnetd add to write to the inbox")
    assert "0123456789abcdef0123456789abcdef01234567" in dropped.read_text(encoding="utf-8").lower()


def reg_values(path: Path) -> dict[tuple[str, str], str]:
    """A .reg file's string values: (key, name) -> value; name "" is the default value."""
    values: dict[tuple[str, str], str] = {}
    key = ""
    for line in path.read_text(encoding="ascii").splitlines():
        if line.startswith("["):
            key = line.strip("[]")
        elif match := re.fullmatch(r'(@|"(?P<name>[^"]*)")="(?P<value>(?:[^"\\]|\\.)*)"', line):
            value = re.sub(r"\\(.)", r"\1", match["value"])
            values[(key, match["name"] or "")] = value
    return values


def test_reg_template_registers_magnetd_add_for_the_current_user() -> None:
    path = WINDOWS / "magnetd-handler.reg"
    raw = path.read_bytes()
    assert raw.startswith(b"Windows Registry Editor Version 5.00\r\n")
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF throughout
    values = reg_values(path)
    scheme = r"HKEY_CURRENT_USER\Software\Classes\magnet"
    command = f'"{DEFAULT_EXE}" add --config "{DEFAULT_CONFIG}" "%1"'
    assert values[(scheme, "URL Protocol")] == ""
    assert values[(scheme + r"\shell\open\command", "")] == command
    assert values[(r"HKEY_CURRENT_USER\Software\Classes\magnetd.magnet\shell\open\command", "")] == command
    assert values[(r"HKEY_CURRENT_USER\Software\magnetd\Capabilities\URLAssociations", "magnet")] == (
        "magnetd.magnet"
    )
    assert all(key.startswith("HKEY_CURRENT_USER\\") for key, _ in values)
    # the command line, as Windows splits it, is one the CLI accepts:
    argv = shlex.split(command.replace("\\", "/").replace("%1", MAGNET))
    args = build_parser().parse_args(argv[1:])
    assert args.command == "add" and args.links == [MAGNET]


def test_powershell_scripts_match_the_reg_file_and_are_ascii() -> None:
    handler = (WINDOWS / "register-magnet-handler.ps1").read_text(encoding="ascii")
    assert """'"{0}" add --config "{1}" "%1"' -f $Magnetd, $Config""" in handler
    assert '"URL Protocol"' in handler and r"HKCU:\Software\Classes" in handler
    install = (WINDOWS / "install-service.ps1").read_text(encoding="ascii")  # 5.1 reads BOM-less as ANSI
    for step in (
        '"[windows]"',
        "pywin32_postinstall",
        '"service", "install", "--startup"',
        '"service", "start"',
    ):
        assert step in install
