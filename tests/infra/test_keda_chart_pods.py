"""KEDA's own pods against the platform's policy pack, and what the chart grants, as the pinned
chart renders them from our values (``tests/infra/keda_chart.py`` says what is and is not
mirrored)."""

from __future__ import annotations

import pytest
import yaml

from infra.keda import (
    KEDA_COMPONENTS,
    KedaArgs,
    chart_value_deletions_yaml,
    chart_values,
    release_args,
)
from stacks.policy.pack import check_manifest
from stacks.policy.pod_security import LATEST, OLDEST
from tests.infra import keda_chart


def rendered(args: KedaArgs | None = None) -> dict:
    args = args or KedaArgs(watch_namespace="ha-celery")
    release = release_args(args, "keda")
    files = [yaml.safe_load(asset.text) for asset in release.value_yaml_files]
    return keda_chart.helm_values(files, release.values)


def test_the_fixture_mirrors_the_pinned_chart_version():
    # The mirror was read from the 2.17.2 templates; another version must be read again.
    assert KedaArgs().chart_version == keda_chart.CHART_VERSION


@pytest.mark.parametrize("version", [f"1.{OLDEST[1]}", "1.33", f"1.{LATEST[1]}"])
@pytest.mark.parametrize("component", KEDA_COMPONENTS)
def test_every_keda_pod_passes_the_policy_pack(component, version):
    pod = keda_chart.rendered_pods(rendered())[component]
    assert check_manifest(pod, version) == []


@pytest.mark.parametrize(("override", "control"), [
    ({"webhooks": {"useHostNetwork": True}}, "hostNamespaces"),
    ({"securityContext": {"webhooks": {"allowPrivilegeEscalation": True}}},
     "allowPrivilegeEscalation"),
    ({"podSecurityContext": {"webhooks": {"runAsNonRoot": None}},
      "securityContext": {"webhooks": {"runAsNonRoot": None}}}, "runAsNonRoot"),
])
def test_a_value_that_breaks_pod_security_is_caught(override, control):
    # The fixture is not a rubber stamp: one bad value in what we pass fails the pack.
    release = release_args(KedaArgs(), "keda")
    files = [yaml.safe_load(asset.text) for asset in release.value_yaml_files]
    values = keda_chart.helm_values(files, keda_chart.merge_maps(release.values, override))
    problems = check_manifest(keda_chart.rendered_pods(values)["webhooks"], "1.33")
    assert any(control in problem for problem in problems), problems


@pytest.mark.parametrize("component", KEDA_COMPONENTS)
def test_the_charts_cpu_limit_is_really_removed(component):
    resources = keda_chart.rendered_pods(rendered())[component]["spec"]["containers"][0][
        "resources"]
    assert "cpu" not in resources["limits"]
    assert resources["limits"]["memory"] and resources["requests"]["cpu"]


def test_without_the_values_file_the_cpu_limit_stays():
    # Helm merges maps: setting only `limits.memory` keeps the chart's `limits.cpu: 1`.
    values = keda_chart.helm_values([], chart_values(KedaArgs()))
    assert values["resources"]["operator"]["limits"]["cpu"] == 1


def test_the_values_file_is_yaml_with_explicit_nulls():
    document = yaml.safe_load(chart_value_deletions_yaml())
    for component in KEDA_COMPONENTS:
        assert "cpu" in document["resources"][component]["limits"]
        assert document["resources"][component]["limits"]["cpu"] is None


def test_the_operator_may_not_list_secrets_anywhere():
    values = rendered()
    assert keda_chart.operator_secret_rules(values) == []
    env = keda_chart.rendered_pods(values)["operator"]["spec"]["containers"][0]["env"]
    assert {"name": "KEDA_RESTRICT_SECRET_ACCESS", "value": "true"} in env


def test_the_charts_default_lets_the_operator_list_every_secret():
    # What the restriction removes (the fixture can tell the two apart).
    assert keda_chart.operator_secret_rules(keda_chart.helm_values([], {})) == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list", "watch"]}]


def test_the_webhook_survives_one_pod_down():
    values = rendered()
    assert values["webhooks"]["failurePolicy"] == "Fail"
    assert values["webhooks"]["replicaCount"] >= 2
    assert values["podDisruptionBudget"]["webhooks"] == {"maxUnavailable": 1}
    spread = values["topologySpreadConstraints"]["webhooks"]
    by_host = [c for c in spread if c["topologyKey"] == "kubernetes.io/hostname"]
    assert by_host and by_host[0]["whenUnsatisfiable"] == "DoNotSchedule"
    assert by_host[0]["labelSelector"] == {"matchLabels": {"app": values["webhooks"]["name"]}}


def test_one_webhook_replica_is_refused():
    from infra.validation import ArgsError

    with pytest.raises(ArgsError, match="webhook_replicas"):
        KedaArgs(webhook_replicas=1)
