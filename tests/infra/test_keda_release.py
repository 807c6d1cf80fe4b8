"""KEDA's Helm release: pinned chart, hardened values, own restricted namespace."""

from __future__ import annotations

import pulumi
import pytest

from infra.keda import (
    CHART_REPOSITORY,
    KEDA_COMPONENTS,
    Keda,
    KedaArgs,
    chart_values,
    namespace_args,
    release_args,
)
from infra.validation import ArgsError
from tests.infra.test_celery_mock_harness import (
    Recorder,
    of_type,
    recorder_fixture,  # noqa: F401 - the `recorder` fixture
)


def test_chart_is_pinned_to_an_exact_version_from_kedacore():
    args = KedaArgs()
    release = release_args(args, "keda")
    assert release.chart == "keda"
    assert release.repository_opts.repo == CHART_REPOSITORY == "https://kedacore.github.io/charts"
    major, minor, patch = release.version.split(".")
    assert all(part.isdigit() for part in (major, minor, patch))


@pytest.mark.parametrize("version", ["latest", "^2.17.0", "2.17", ">=2.15.0", ""])
def test_chart_version_ranges_are_refused(version):
    with pytest.raises(ArgsError, match="chart_version"):
        KedaArgs(chart_version=version)


@pytest.mark.parametrize("component", KEDA_COMPONENTS)
def test_every_keda_pod_is_restricted(component):
    values = chart_values(KedaArgs())
    pod = values["podSecurityContext"][component]
    container = values["securityContext"][component]
    assert pod["runAsNonRoot"] is True
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert container["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["readOnlyRootFilesystem"] is True


@pytest.mark.parametrize("component", KEDA_COMPONENTS)
def test_every_keda_container_has_requests_and_a_memory_limit(component):
    resources = chart_values(KedaArgs())["resources"][component]
    assert resources["requests"]["cpu"] and resources["requests"]["memory"]
    assert resources["limits"]["memory"]


def test_watch_namespace_comes_from_args():
    assert chart_values(KedaArgs(watch_namespace="ha-celery"))["watchNamespace"] == "ha-celery"
    assert chart_values(KedaArgs())["watchNamespace"] == ""


def test_keda_namespace_enforces_restricted():
    labels = namespace_args(KedaArgs(namespace="autoscaling")).metadata.labels
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_failed_install_rolls_back():
    assert release_args(KedaArgs(), "keda").atomic is True


@pulumi.runtime.test
def test_keda_installs_the_release_into_its_own_namespace(recorder: Recorder):
    keda = Keda("keda", KedaArgs(namespace="keda-system"), opts=recorder.options())

    def check(resources):
        (namespace,) = of_type(resources, ":Namespace")
        (release,) = of_type(resources, "helm.sh/v3:Release")
        assert namespace.inputs["metadata"]["name"] == "keda-system"
        assert release.inputs["namespace"] == "keda-system"
        assert release.inputs["version"] == KedaArgs().chart_version
        assert release.options.parent is keda

    return recorder.settled(check)
