"""deploy/prometheus: promtool checks the configs and rules and runs the rules' unit tests."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.devtools import require_tool
from tests.deploy.helpers import DEPLOY, RULE_FILES, alert_names, run

PROMETHEUS = DEPLOY / "prometheus"
UNIT_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))


def promtool(*args: str, cwd: Path = PROMETHEUS) -> tuple[int, str]:
    result = run([require_tool("promtool"), *args], cwd=cwd)
    return result.returncode, result.stdout + result.stderr


def test_compose_config_and_its_rules_check():
    code, output = promtool("check", "config", "prometheus.yml")
    assert code == 0, output
    assert f"{len(RULE_FILES)} rule files found" in output


def test_kubernetes_config_checks(tmp_path):
    """Debian builds Prometheus without Kubernetes discovery, so its promtool cannot read
    kubernetes_sd_configs: everything else, relabelling included, is checked with that one
    block swapped for a static target."""
    config: dict[str, Any] = yaml.safe_load((PROMETHEUS / "kubernetes.yml").read_text())
    (job,) = config["scrape_configs"]
    (discovery,) = job.pop("kubernetes_sd_configs")
    assert discovery["role"] == "pod"
    assert discovery["namespaces"]["names"] == ["gateway"]
    job["static_configs"] = [{"targets": ["10.0.0.1:8000"]}]
    (tmp_path / "kubernetes.yml").write_text(yaml.safe_dump(config))
    shutil.copytree(PROMETHEUS / "rules", tmp_path / "rules")
    code, output = promtool("check", "config", "kubernetes.yml", cwd=tmp_path)
    assert code == 0, output


def test_rules_check():
    code, output = promtool("check", "rules", *map(str, RULE_FILES))
    assert code == 0, output


def test_rules_unit_tests_pass():
    code, output = promtool("test", "rules", *map(str, UNIT_TESTS))
    assert code == 0, output


def test_every_alert_is_tested_firing_and_quiet():
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in UNIT_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert alert_names() <= firing, alert_names() - firing
    assert alert_names() <= quiet, alert_names() - quiet
    assert firing | quiet <= alert_names(), "tests name an alert that does not exist"


@pytest.mark.parametrize(
    ("original", "loosened"),
    [
        ("error_ratio:rate5m > 0.05", "error_ratio:rate5m > 0.2"),
        ("> 1.5 * (", "> 3 * ("),
        ("p99_5m > 0.025", "p99_5m > 0.1"),
        ("overhead_seconds:p99_5m > 0.005", "overhead_seconds:p99_5m > 0.01"),
        ("version) (gateway_variant_ready) == 0", "version) (gateway_variant_ready) < 0"),
        ("(model) (gateway_variant_ready) == 0", "(model) (gateway_variant_ready) < 0"),
        ("up == 0", "up < 0"),
    ],
)
def test_unit_tests_fail_when_an_alert_is_loosened(tmp_path, original, loosened):
    copy = tmp_path / "prometheus"
    shutil.copytree(PROMETHEUS, copy)
    alerts = copy / "rules" / "gateway-alerts.yml"
    text = alerts.read_text()
    assert text.count(original) == 1, original
    alerts.write_text(text.replace(original, loosened))
    code, output = promtool("test", "rules", *(f"tests/{p.name}" for p in UNIT_TESTS), cwd=copy)
    assert code != 0, output
    assert "FAILED" in output
