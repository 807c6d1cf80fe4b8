"""Alertmanager's generated configuration: valid for the real amtool, routed, never silent."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from infra.observability import alerts, routing
from infra.observability.sources import PlatformMetrics
from infra.rabbitmq_config import RabbitMQVersion
from infra.validation import ArgsError

SMTP = routing.SmtpSettings(
    smarthost="smtp.example.com:587", sender="alerts@example.com", username="relay", password="pw"
)


def amtool_check(tmp_path, args: routing.AlertRoutingArgs) -> subprocess.CompletedProcess:
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.fail("amtool is not installed: run scripts/prereq.d/50-observability.sh")
    path = tmp_path / "alertmanager.yaml"
    path.write_text(routing.render_alertmanager_yaml(routing.alertmanager_config(args), args))
    return subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize(
    "args",
    [
        routing.AlertRoutingArgs(),
        routing.AlertRoutingArgs(emails=("oncall@example.com", "dba@example.com"), smtp=SMTP),
        routing.AlertRoutingArgs(webhook_urls=("https://hooks.example.com/services/T0/B0/x",)),
        routing.AlertRoutingArgs(
            emails=("oncall@example.com",),
            webhook_urls=("http://alert-bridge.monitoring.svc:8080/hook",),
            smtp=routing.SmtpSettings(smarthost="mail.internal:25", sender="a@example.com"),
            group_wait_seconds=0,
        ),
    ],
    ids=["nowhere", "email", "webhook", "both"],
)
def test_amtool_accepts_every_generated_configuration(tmp_path, args):
    result = amtool_check(tmp_path, args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_amtool_rejects_a_broken_configuration(tmp_path):
    """Control: the check above can fail."""
    path = tmp_path / "alertmanager.yaml"
    path.write_text("route:\n  receiver: missing\nreceivers:\n- name: other\n")
    result = subprocess.run(["amtool", "check-config", str(path)], capture_output=True, text=True)
    assert result.returncode != 0


def test_no_receiver_means_the_plan_can_say_alerts_go_nowhere():
    args = routing.AlertRoutingArgs()
    assert args.goes_nowhere
    assert routing.routing_summary(args).startswith("alerts go nowhere")
    config = routing.alertmanager_config(args)
    assert config["route"]["receiver"] == routing.NOWHERE
    assert config["receivers"] == [{"name": routing.NOWHERE}]
    assert "alerts go nowhere" in routing.render_alertmanager_yaml(config, args)


def test_every_receiver_hears_about_resolution_and_critical_alerts_repeat_sooner():
    args = routing.AlertRoutingArgs(
        emails=("oncall@example.com",), webhook_urls=("https://hooks.example.com/x",), smtp=SMTP
    )
    config = routing.alertmanager_config(args)
    (receiver,) = config["receivers"]
    assert [c["to"] for c in receiver["email_configs"]] == ["oncall@example.com"]
    assert [c["url"] for c in receiver["webhook_configs"]] == ["https://hooks.example.com/x"]
    assert all(c["send_resolved"] for c in receiver["email_configs"] + receiver["webhook_configs"])
    assert config["route"]["group_by"] == ["alertname", "namespace"]
    (critical,) = config["route"]["routes"]
    assert critical["matchers"] == ['severity="critical"']
    assert critical["repeat_interval"] == "1h"
    assert config["route"]["repeat_interval"] == "4h"
    assert config["global"]["smtp_require_tls"] is True
    assert routing.routing_summary(args) == "alerts go to oncall@example.com, webhook 1"


def test_resolved_secret_values_replace_outputs():
    args = routing.AlertRoutingArgs(webhook_urls=("https://placeholder.example.com/x",))
    config = routing.alertmanager_config(args, webhook_urls=["https://hooks.example.com/secret"])
    assert config["receivers"][0]["webhook_configs"][0]["url"] == "https://hooks.example.com/secret"


def test_inhibitions_name_alerts_that_exist():
    metrics = PlatformMetrics(rabbitmq_version=RabbitMQVersion.parse("4.3.4"), broker_replicas=3)
    names = {rule.name for rule in alerts.alert_rules(metrics, alerts.AlertThresholds())}
    for source, targets in routing.INHIBITIONS:
        assert source in names
        assert set(targets) <= names


@pytest.mark.parametrize(
    ("build", "field", "fragment"),
    [
        (lambda: routing.AlertRoutingArgs(emails=("oncall",), smtp=SMTP),
         "AlertRoutingArgs.emails", "'oncall'"),
        (lambda: routing.AlertRoutingArgs(emails=("oncall@example.com",)),
         "AlertRoutingArgs.smtp", "SmtpSettings"),
        (lambda: routing.AlertRoutingArgs(emails=("a@example.com", "a@example.com"), smtp=SMTP),
         "AlertRoutingArgs.emails", "each address once"),
        (lambda: routing.AlertRoutingArgs(webhook_urls=("http://hooks.example.com/T0/secret",)),
         "AlertRoutingArgs.webhook_urls", "https://"),
        (lambda: routing.AlertRoutingArgs(webhook_urls=("hooks.example.com",)),
         "AlertRoutingArgs.webhook_urls", "https://"),
        (lambda: routing.AlertRoutingArgs(repeat_interval_seconds=5),
         "AlertRoutingArgs.repeat_interval_seconds", "60..604800"),
        (lambda: routing.AlertRoutingArgs(group_wait_seconds="30s"),
         "AlertRoutingArgs.group_wait_seconds", "whole number"),
        (lambda: routing.SmtpSettings(smarthost="smtp.example.com", sender="a@example.com"),
         "SmtpSettings.smarthost", "host:port"),
        (lambda: routing.SmtpSettings(smarthost="smtp.example.com:587", sender="a@example.com",
                                      username="relay"),
         "SmtpSettings.username", "password"),
    ],
)
def test_bad_routing_settings_name_the_field_the_value_and_the_fix(build, field, fragment):
    with pytest.raises(ArgsError) as raised:
        build()
    assert raised.value.field == field
    assert fragment in str(raised.value)


def test_a_rejected_webhook_url_is_not_echoed_with_its_token():
    with pytest.raises(ArgsError) as raised:
        routing.AlertRoutingArgs(webhook_urls=("http://hooks.example.com/T0/B0/s3cr3t",))
    assert "s3cr3t" not in str(raised.value)
    assert "hooks.example.com" in str(raised.value)


def test_alertmanager_secret_lives_where_the_managed_alertmanager_reads_it():
    secret = routing.alertmanager_secret_args("route: {}\n", instance="observability")
    assert secret.metadata.namespace == "gmp-public"
    assert secret.metadata.name == "alertmanager"
    assert list(secret.string_data) == ["alertmanager.yaml"]
