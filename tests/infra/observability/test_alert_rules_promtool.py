"""The generated alert rules, checked and unit-tested by the real promtool.

For both broker versions the platform runs (4.3.4 in the cluster, Debian's 3.10.8 in the drill):
``promtool check rules`` on the rule file, and ``promtool test rules`` with one test group per
firing and per quiet case of ``alert_cases`` (every alert for 4.3.4; for 3.10.8 the alerts whose
expression differs). A negative control runs the
quiet series with firing expectations and requires promtool to fail for every alert, so the
harness itself is proven able to catch a wrong rule.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from infra.observability import alerts
from infra.observability.sources import PlatformMetrics
from infra.rabbitmq_config import RabbitMQVersion
from tests.infra.observability.alert_cases import FIRING, QUIET, Case

VERSIONS = ("4.3.4", "3.10.8")
PREREQUISITE = "scripts/prereq.d/50-observability.sh"


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(f"promtool is not installed: run {PREREQUISITE} (Debian's prometheus package)")
    return path


def metrics_for(version: str) -> PlatformMetrics:
    return PlatformMetrics(rabbitmq_version=RabbitMQVersion.parse(version), broker_replicas=3)


def rules_for(version: str) -> list[alerts.AlertRule]:
    return alerts.alert_rules(metrics_for(version), alerts.AlertThresholds())


def test_every_alert_has_a_firing_and_a_quiet_case():
    names = {rule.name for rule in rules_for(VERSIONS[0])}
    assert len(names) >= 14
    assert names - set(FIRING) == set(), "alerts without a firing case"
    assert names - set(QUIET) == set(), "alerts without a quiet case"
    assert set(FIRING) - names == set(), "firing cases of alerts that no longer exist"
    assert set(QUIET) - names == set(), "quiet cases of alerts that no longer exist"
    assert all(FIRING[name] and QUIET[name] for name in names)


def _test_group(rule: alerts.AlertRule, case: Case, expect_firing: bool) -> dict:
    name = rule.name
    expected = (
        [{"exp_labels": {"severity": rule.severity, "component": rule.component, **labels}}
         for labels in case.expected]
        if expect_firing
        else []
    )
    return {
        "name": f"{name}: {case.description}",
        "interval": case.interval,
        "input_series": [{"series": series, "values": values} for series, values in case.series],
        "alert_rule_test": [
            {"eval_time": case.eval_time, "alertname": name, "exp_alerts": expected}
        ],
    }


def version_dependent(version: str) -> set[str]:
    """Alerts whose expression differs from the cluster's version (the rest is tested once)."""
    cluster = {rule.name: rule.expr for rule in rules_for(VERSIONS[0])}
    return {rule.name for rule in rules_for(version) if rule.expr != cluster.get(rule.name)}


def write_test_file(tmp_path: Path, version: str, *, invert_quiet: bool = False) -> Path:
    metrics = metrics_for(version)
    rules = {rule.name: rule for rule in rules_for(version)}
    tested = set(rules) if version == VERSIONS[0] else version_dependent(version)
    # Evaluated once a minute like the test file says (the 27-hour backup cases stay cheap).
    groups = alerts.rule_groups(list(rules.values()), with_annotations=False,
                                evaluation_interval_seconds=60)
    (tmp_path / "rules.yaml").write_text(alerts.render_rules_yaml(groups))
    tests = []
    for name, rule in rules.items():
        if name not in tested:
            continue
        for build in FIRING[name]:
            if not invert_quiet:
                tests.append(_test_group(rule, build(metrics), expect_firing=True))
        for build in QUIET[name]:
            case = build(metrics)
            if invert_quiet:
                case = Case(case.description, case.series, case.eval_time, [{}], case.interval)
            tests.append(_test_group(rule, case, expect_firing=invert_quiet))
    path = tmp_path / "tests.yaml"
    path.write_text(
        yaml.safe_dump(
            {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests},
            sort_keys=False,
        )
    )
    return path


def test_the_older_broker_version_changes_exactly_the_queue_metrics_rules():
    assert version_dependent("3.10.8") == {
        "RabbitMQQuorumQueueBelowMajority", "CeleryQueueWaitTooLong"}


@pytest.mark.parametrize("version", VERSIONS)
def test_promtool_checks_the_generated_rules_without_errors(tmp_path, version):
    rules = rules_for(version)
    path = tmp_path / "rules.yaml"
    path.write_text(alerts.render_rules_yaml(alerts.rule_groups(rules)))
    result = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


@pytest.mark.parametrize("version", VERSIONS)
def test_every_alert_fires_on_its_firing_series_and_stays_quiet_on_its_quiet_series(
    tmp_path, version
):
    path = write_test_file(tmp_path, version)
    result = subprocess.run([promtool(), "test", "rules", path.name], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_harness_catches_an_alert_that_does_not_fire(tmp_path):
    """Negative control: the quiet series with firing expectations must fail for every alert."""
    path = write_test_file(tmp_path, VERSIONS[0], invert_quiet=True)
    result = subprocess.run([promtool(), "test", "rules", path.name], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    for name in QUIET:
        assert f"alertname: {name}" in output, f"promtool did not report {name}"
