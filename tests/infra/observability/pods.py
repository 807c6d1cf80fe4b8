"""A sidecar inside a pod, rendered by the offline plan, so tests can validate it the way the
plan validates every manifest (schema, Pod Security `restricted`, resources)."""

from __future__ import annotations

import pulumi_kubernetes as k8s

from infra import pod_security
from stacks import plan as plan_engine


def pod_manifest(
    container: k8s.core.v1.ContainerArgs, *, uid: int, volumes: list[str]
) -> dict:
    """A Deployment whose pod (uid ``uid``, emptyDir ``volumes``) runs ``container``."""

    def program() -> None:
        k8s.apps.v1.Deployment(
            "sidecar-probe",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="sidecar-probe", namespace="ha-celery"),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels={"app": "probe"}),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels={"app": "probe"}),
                    spec=k8s.core.v1.PodSpecArgs(
                        security_context=pod_security.pod_security_context(uid),
                        automount_service_account_token=False,
                        containers=[container],
                        volumes=[
                            k8s.core.v1.VolumeArgs(
                                name=name, empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs()
                            )
                            for name in volumes
                        ],
                    ),
                ),
            ),
        )

    (manifest,) = plan_engine.run_program(program).manifests()
    return manifest


def validate(manifest: dict) -> list[str]:
    return [str(problem) for problem in plan_engine.validate_manifests([manifest], "1.33")]
