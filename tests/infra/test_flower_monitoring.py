"""Flower: a ClusterIP Service reached by port-forward, closed to network ingress."""

from __future__ import annotations

import pulumi

from infra.flower import (
    FLOWER_PORT,
    Flower,
    FlowerArgs,
    flower_command,
    flower_deployment_args,
    flower_network_policy_args,
    flower_selector,
    flower_service_args,
)
from tests.infra.test_celery_mock_harness import (
    Recorder,
    assert_resources,
    assert_restricted,
    assert_secrets_by_reference,
    assert_tmp_is_empty_dir,
    of_type,
    recorder_fixture,  # noqa: F401 - the `recorder` fixture
    runtime,
)


def args() -> FlowerArgs:
    return FlowerArgs(runtime=runtime())


def test_flower_service_is_cluster_ip_only():
    service = flower_service_args("flower", args())
    assert service.spec.type == "ClusterIP"
    assert service.spec.external_ips is None
    assert [p.port for p in service.spec.ports] == [FLOWER_PORT]


def test_flower_admits_no_network_ingress_at_all():
    policy = flower_network_policy_args("flower", args()).spec
    assert "Ingress" in policy.policy_types
    assert policy.ingress == []
    assert policy.pod_selector.match_labels == flower_selector("flower")


def test_flower_runs_the_apps_celery_in_exec_form():
    command = flower_command(args())
    assert command[:4] == ["celery", "--app", "app.celery_app", "flower"]
    assert f"--port={FLOWER_PORT}" in command


def test_flower_pod_is_restricted_with_resources_and_secret_references():
    spec = flower_deployment_args("flower", args()).spec.template.spec
    assert_restricted(spec)
    assert_resources(spec)
    assert_secrets_by_reference(spec)
    assert_tmp_is_empty_dir(spec)


def test_flower_pod_gets_no_service_link_variables():
    # A Service named "flower" would inject FLOWER_PORT=tcp://..., which Flower reads as its port.
    spec = flower_deployment_args("flower", args()).spec.template.spec
    assert spec.enable_service_links is False


@pulumi.runtime.test
def test_flower_component_creates_no_ingress_or_external_service(recorder: Recorder):
    Flower("flower", args(), opts=recorder.options())

    def check(resources):
        assert of_type(resources, ":Ingress") == []
        (service,) = of_type(resources, ":Service")
        assert service.inputs["spec"]["type"] == "ClusterIP"
        (policy,) = of_type(resources, ":NetworkPolicy")
        assert policy.inputs["spec"]["ingress"] == []
        assert len(of_type(resources, ":Deployment")) == 1

    return recorder.settled(check)
