"""The Prometheus alert rules and the Grafana dashboard: checked with promtool, and their metric
names checked against what the endpoint really exposes."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from magnetd.model import InstanceStatus
from magnetd.telemetry.metrics import Metrics, MetricsSnapshot
from tests.realparts import need_program

pytestmark = pytest.mark.real

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "packaging" / "prometheus" / "magnetd-alerts.yaml"
RULE_TESTS = ROOT / "packaging" / "prometheus" / "magnetd-alerts.test.yaml"
GRAFANA = ROOT / "packaging" / "grafana" / "magnetd.json"


def exposed_names() -> set[str]:
    """Every sample name the endpoint exposes, with an instance, a gate and a notification present."""
    snapshot = MetricsSnapshot(
        instances={"primary": InstanceStatus.OK}, gates={"wg0": True}, notifications={("ntfy", "ok"): 1}
    )
    text = Metrics(lambda: snapshot, probe_targets=["primary"]).exposition()[0].decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if not line.startswith("#")}


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\bmagnetd_[a-z_]+", expr))


def grafana_exprs() -> list[str]:
    dashboard: dict[str, Any] = json.loads(GRAFANA.read_text(encoding="utf-8"))
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [need_program("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_alert_rules_pass_promtool_check() -> None:
    done = promtool("check", "rules", RULES.name, cwd=RULES.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 6 rules found" in done.stdout


def test_alert_rules_fire_as_their_unit_tests_expect() -> None:
    done = promtool("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_is_unit_tested_both_ways() -> None:
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    cases = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]
    checks = [check for case in cases for check in case["alert_rule_test"]]
    fired = {c["alertname"] for c in checks if c["exp_alerts"]}
    quiet = {c["alertname"] for c in checks if not c["exp_alerts"]}
    assert fired == alerts and quiet == alerts


def test_rules_and_dashboard_use_only_exposed_metrics() -> None:
    exposed = exposed_names()
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]] + grafana_exprs()
    used = set().union(*(metric_names(e) for e in exprs))
    assert used and used <= exposed, used - exposed
    panels = json.loads(GRAFANA.read_text(encoding="utf-8"))["panels"]
    for needed in (
        "magnetd_files_total",
        "magnetd_inbox_oldest_seconds",
        "magnetd_instance_status",
        "magnetd_vpn_up",
        "magnetd_send_seconds_bucket",
        "magnetd_notifications_total",
    ):
        assert any(needed in e for e in grafana_exprs()), needed
    assert len({p["id"] for p in panels}) == len(panels)


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """Each panel query, with the dashboard's variables filled in, as a recording rule for promtool."""
    exprs = [e.replace("$job", "magnetd").replace("$host", ".*") for e in grafana_exprs()]
    group = {
        "name": "grafana",
        "rules": [{"record": f"grafana:query{i}", "expr": e} for i, e in enumerate(exprs)],
    }
    (tmp_path / "queries.yaml").write_text(yaml.safe_dump({"groups": [group]}), encoding="utf-8")
    done = promtool("check", "rules", "queries.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
