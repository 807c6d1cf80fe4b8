"""Every object of the Celery workload, through the offline plan engine's validation.

Runs all six components together under the plan's mocks and checks each Kubernetes object
against the cluster's OpenAPI schema (strict: unknown fields fail), the bundled CRD schemas
(KEDA, GKE Ingress), Pod Security `restricted` and the resources policy.
"""

from __future__ import annotations

import pytest

from infra.celery import (
    AppRuntimeArgs,
    CpuAutoscalingArgs,
    QueueAutoscalingArgs,
    SecretKeyRef,
    WorkerPool,
    WorkerPoolArgs,
)
from infra.flower import Flower, FlowerArgs
from infra.images import AppImage, AppImageArgs, ImageBuildArgs
from infra.keda import Keda, KedaArgs
from infra.scheduler import SchedulerJob, SchedulerJobArgs
from infra.web import WebApp, WebAppArgs, WebIngressArgs
from stacks import plan as plan_engine


def workload(*, gcp: bool):
    def program() -> None:
        image = AppImage(
            "app",
            AppImageArgs(
                build=ImageBuildArgs(project="p", location="europe-west1", context_path=".")
            )
            if gcp
            else AppImageArgs(image="ha-celery/app:dev"),
        )
        runtime = AppRuntimeArgs(
            namespace="ha-celery",
            image=image.image_ref,
            broker_url=SecretKeyRef(name="rabbitmq-app-user", key="broker-url"),
            database_url=SecretKeyRef(name="postgres-app-user", key="database-url"),
        )
        if gcp:
            keda = Keda("keda", KedaArgs(watch_namespace="ha-celery"))
            autoscaling = QueueAutoscalingArgs(
                queue_monitor_secret_name="rabbitmq-queue-monitor", depends_on=(keda.release,)
            )
        else:
            autoscaling = CpuAutoscalingArgs()
        for queue, grace in (("default", 120), ("small", 120), ("large", 3600)):
            WorkerPool(
                f"worker-{queue}",
                WorkerPoolArgs(
                    runtime=runtime,
                    queue=queue,
                    termination_grace_period_seconds=grace,
                    autoscaling=autoscaling,
                ),
            )
        ingress = (
            WebIngressArgs(domain="celery.example.com", global_address_name="web-ip")
            if gcp
            else None
        )
        WebApp("web", WebAppArgs(runtime=runtime, ingress=ingress))
        SchedulerJob("scheduler", SchedulerJobArgs(runtime=runtime, run_id="first"))
        Flower("flower", FlowerArgs(runtime=runtime))

    return plan_engine.run_program(program)


@pytest.mark.parametrize("gcp", [True, False], ids=["gcp", "local"])
def test_every_workload_object_is_valid_restricted_and_resourced(gcp):
    plan = workload(gcp=gcp)
    manifests = [
        plan_engine.to_manifest(r) for r in plan.resources if plan_engine.is_kubernetes_object(r)
    ]
    kinds = {m["kind"] for m in manifests}
    assert {"Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy", "Job"} <= kinds
    if gcp:
        assert {"ScaledObject", "ClusterTriggerAuthentication", "Ingress",
                "ManagedCertificate"} <= kinds
    else:
        assert "HorizontalPodAutoscaler" in kinds and "Ingress" not in kinds
    problems = plan_engine.validate_manifests(manifests, plan.kubernetes_version)
    assert problems == []


def test_built_image_reaches_every_pod_pinned_by_digest():
    plan = workload(gcp=True)
    images = set()
    for resource in plan.resources:
        if resource.type in ("kubernetes:apps/v1:Deployment", "kubernetes:batch/v1:Job"):
            spec = resource.inputs["spec"]["template"]["spec"]
            for container in spec["containers"] + spec.get("initContainers", []):
                images.add(container["image"])
    assert len(images) == 1
    (image,) = images
    assert image.startswith("europe-west1-docker.pkg.dev/p/ha-celery/app:main@sha256:")
