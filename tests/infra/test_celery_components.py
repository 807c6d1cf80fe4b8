"""WorkerPool under per-test Pulumi mocks: which objects exist, how they are wired."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from infra.celery import CpuAutoscalingArgs, QueueAutoscalingArgs, WorkerPool, WorkerPoolArgs
from tests.infra.test_celery_mock_harness import (
    Recorder,
    of_type,
    recorder_fixture,  # noqa: F401 - the `recorder` fixture
    runtime,
)


def keda_pool(depends_on=()) -> WorkerPoolArgs:
    return WorkerPoolArgs(
        runtime=runtime(),
        queue="small",
        autoscaling=QueueAutoscalingArgs(
            queue_monitor_secret_name="rabbitmq-queue-monitor", depends_on=tuple(depends_on)
        ),
    )


@pulumi.runtime.test
def test_keda_pool_has_deployment_pdb_policy_and_scaled_object_but_no_hpa(recorder: Recorder):
    WorkerPool("worker-small", keda_pool(), opts=recorder.options())

    def check(resources):
        assert len(of_type(resources, ":Deployment")) == 1
        assert len(of_type(resources, ":PodDisruptionBudget")) == 1
        assert len(of_type(resources, ":NetworkPolicy")) == 1
        (auth,) = of_type(resources, ":ClusterTriggerAuthentication")
        # Cluster-scoped (KEDA reads the Secret from its own namespace): no namespace, and the
        # platform's namespace in the name.
        assert "namespace" not in auth.inputs["metadata"]
        (scaled,) = of_type(resources, ":ScaledObject")
        assert scaled.type == "kubernetes:keda.sh/v1alpha1:ScaledObject"
        assert scaled.inputs["spec"]["triggers"][0]["metadata"]["protocol"] == "http"
        assert of_type(resources, ":HorizontalPodAutoscaler") == []

    return recorder.settled(check)


@pulumi.runtime.test
def test_scaled_object_waits_for_keda_and_the_deployment(recorder: Recorder):
    keda_release = k8s.core.v1.ConfigMap("stand-in-for-keda-release")
    WorkerPool("worker-small", keda_pool([keda_release]), opts=recorder.options())

    def check(resources):
        scaled = resources["worker-small-scaled-object"]
        depends_on = scaled.options.depends_on
        assert keda_release in depends_on
        assert any(isinstance(d, k8s.apps.v1.Deployment) for d in depends_on)
        assert keda_release in resources["worker-small-trigger-auth"].options.depends_on

    return recorder.settled(check)


@pulumi.runtime.test
def test_without_keda_the_pool_gets_a_cpu_hpa_and_no_keda_objects(recorder: Recorder):
    args = WorkerPoolArgs(runtime=runtime(), queue="large", autoscaling=CpuAutoscalingArgs())
    pool = WorkerPool("worker-large", args, opts=recorder.options())
    assert pool.autoscaler_kind == "HorizontalPodAutoscaler"

    def check(resources):
        (hpa,) = of_type(resources, ":HorizontalPodAutoscaler")
        assert hpa.type == "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
        assert hpa.inputs["spec"]["scaleTargetRef"]["name"] == "worker-large"
        assert of_type(resources, ":ScaledObject") == []
        assert of_type(resources, "TriggerAuthentication") == []

    return recorder.settled(check)


@pulumi.runtime.test
def test_children_inherit_the_kubernetes_provider_and_parent(recorder: Recorder):
    provider = k8s.Provider("cluster", kubeconfig="{}")
    pool = WorkerPool("worker-small", keda_pool(), opts=recorder.options(provider=provider))

    def check(resources):
        children = [r for r in resources.values() if r.type.startswith("kubernetes:")]
        assert len(children) == 5
        for child in children:
            assert child.options.parent is pool, child.name
            assert child.provider and "::cluster::" in child.provider, child.name

    return recorder.settled(check)


@pulumi.runtime.test
def test_no_credential_value_reaches_the_registered_deployment(recorder: Recorder):
    WorkerPool("worker-small", keda_pool(), opts=recorder.options())

    def check(resources):
        (deployment,) = of_type(resources, ":Deployment")
        spec = deployment.inputs["spec"]["template"]["spec"]
        env = {e["name"]: e for e in spec["containers"][0]["env"]}
        assert "value" not in env["CELERY_BROKER_URL"]
        assert env["CELERY_BROKER_URL"]["valueFrom"]["secretKeyRef"]["name"] == "rabbitmq-app-user"
        assert "replicas" not in deployment.inputs["spec"]

    return recorder.settled(check)


@pulumi.runtime.test
def test_deployment_name_output_is_the_object_name(recorder: Recorder):
    pool = WorkerPool("worker-small", keda_pool(), opts=recorder.options())
    return pool.deployment_name.apply(lambda name: _assert_equal(name, "worker-small"))


def _assert_equal(actual, expected):
    assert actual == expected
    return actual
