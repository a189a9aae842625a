"""packaging/docker: the magnetd config embedded in the compose example passes ``magnetd check-config``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

DOCKER = Path(__file__).resolve().parents[2] / "packaging" / "docker"


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))
    return data


def embedded_config(tmp_path: Path) -> Path:
    """The compose file's magnetd config, its /data folders moved under ``tmp_path``."""
    text = str(compose()["configs"]["magnetd"]["content"])
    assert "$" not in text, "compose would interpolate it"
    path = tmp_path / "magnetd.yaml"
    path.write_text(text.replace("/data/", f"{tmp_path}/data/"), encoding="utf-8")
    path.chmod(0o600)
    return path


def check_config(path: Path, environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", ""), **environ}
    command = [sys.executable, "-m", "magnetd", "check-config", "--config", str(path)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)


def test_the_embedded_config_passes_check_config(tmp_path: Path) -> None:
    done = check_config(embedded_config(tmp_path), {"GLUETUN_API_KEY": "g-key", "QBT_API_KEY": "qbt_key"})
    assert done.returncode == 0, done.stdout + done.stderr


def test_check_config_would_catch_a_missing_key(tmp_path: Path) -> None:
    done = check_config(embedded_config(tmp_path), {"GLUETUN_API_KEY": "g-key"})
    assert done.returncode != 0
    assert "QBT_API_KEY" in done.stdout + done.stderr


def test_magnetd_gets_what_its_config_reads_and_qbittorrent_shares_gluetuns_network(tmp_path: Path) -> None:
    services = compose()["services"]
    config = yaml.safe_load(compose()["configs"]["magnetd"]["content"])
    assert services["qbittorrent"]["network_mode"] == "service:gluetun"
    [gate] = config["vpn"]
    assert gate["http"] == "http://gluetun:8000/v1/vpn/status" and gate["expect"] == "running"
    wanted = {gate["api_key_env"], *(i["api_key_env"] for i in config["instances"])}
    assert wanted <= set(services["magnetd"]["environment"])
    assert services["magnetd"]["configs"][0]["target"] == "/config/magnetd.yaml"
    dockerfile = (DOCKER / "Dockerfile").read_text(encoding="utf-8")
    assert "MAGNETD_CONFIG=/config/magnetd.yaml" in dockerfile and "\nUSER magnetd\n" in dockerfile
