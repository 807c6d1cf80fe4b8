"""The backup-freshness exporter sidecar of the pghoard pod (``pghoard/backup_metrics.py``).

Owns ``BackupExporterArgs`` and the sidecar's ``ContainerArgs``: the same image as pghoard (the
script ships in it, beside ``check_backup.py``), the pod's pghoard configuration and work
directory mounted read-only (it reads the site name, the API port and the alert files), its own
metrics port, restricted, with requests and a memory limit. It reaches pghoard's API on the
pod's loopback and converts pghoard's monotonic timestamps with the node's clock, which is why
it is a sidecar and not a separate Deployment.

Does not own the pghoard pod (the backup component adds the container and the scraper's
NetworkPolicy rule) and does not decide thresholds (``alerts``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from infra import pod_security
from infra.backup import CONFIG_DIR, CONFIG_FILE, PGHOARD_UID, WORK_DIR
from infra.celery import ContainerResources, resource_requirements
from infra.images import validate_image_reference
from infra.observability import sources
from infra.validation import check

SCRIPT = "/opt/pghoard/bin/backup_metrics.py"
CONFIG_VOLUME = "config"
WORK_VOLUME = "work"
"""The pghoard pod's volumes (infra/backup.py): its configuration and its work directory, which
holds pghoard's alert files."""


@dataclass(frozen=True, kw_only=True)
class BackupExporterArgs:
    """Inputs of the sidecar. Only ``image`` (pghoard's) is required."""

    image: pulumi.Input[str]
    port: int = sources.BACKUP_METRICS_PORT
    resources: ContainerResources = field(
        default_factory=lambda: ContainerResources(
            cpu_request="10m", memory_request="32Mi", memory_limit="64Mi"
        )
    )

    def __post_init__(self) -> None:
        if isinstance(self.image, str):
            validate_image_reference(self.image, field="BackupExporterArgs.image")
        check(
            isinstance(self.port, int) and 1024 <= self.port <= 65535 and self.port != 16000,
            "BackupExporterArgs.port",
            self.port,
            "an unprivileged TCP port 1024..65535 other than pghoard's API (16000)",
        )


def backup_exporter_command(args: BackupExporterArgs) -> list[str]:
    return [SCRIPT, "--config", f"{CONFIG_DIR}/{CONFIG_FILE}", "--port", str(args.port)]


def backup_exporter_container(args: BackupExporterArgs) -> k8s.core.v1.ContainerArgs:
    """Pure: the sidecar for the pghoard pod."""
    probe = k8s.core.v1.HTTPGetActionArgs(path="/healthz", port=sources.METRICS_PORT_NAME)
    return k8s.core.v1.ContainerArgs(
        name="backup-metrics",
        image=args.image,
        image_pull_policy="IfNotPresent",
        command=backup_exporter_command(args),
        ports=[
            k8s.core.v1.ContainerPortArgs(
                name=sources.METRICS_PORT_NAME, container_port=args.port, protocol="TCP"
            )
        ],
        resources=resource_requirements(args.resources),
        security_context=pod_security.container_security_context(PGHOARD_UID),
        # /healthz answers without asking pghoard: pghoard being down is a metric (and an
        # alert), not a reason to restart the exporter.
        readiness_probe=k8s.core.v1.ProbeArgs(http_get=probe, period_seconds=10),
        liveness_probe=k8s.core.v1.ProbeArgs(
            http_get=probe, period_seconds=30, failure_threshold=3, timeout_seconds=5
        ),
        volume_mounts=[
            k8s.core.v1.VolumeMountArgs(name=CONFIG_VOLUME, mount_path=CONFIG_DIR,
                                        read_only=True),
            k8s.core.v1.VolumeMountArgs(name=WORK_VOLUME, mount_path=WORK_DIR, read_only=True),
        ],
    )
