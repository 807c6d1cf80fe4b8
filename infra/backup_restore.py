"""A restore of the platform's PostgreSQL, run in the cluster only while one is requested.

The backups' private key lives in the stack's encrypted state (the ``tls.PrivateKey`` of
``infra/backup.py``, exported as the secret stack output ``backup_restore_key``), never in the
cluster by default. Setting ``ha-celery:backup.restore.runId`` makes ``PgHoardBackup`` create,
for that run only:

  * the ``<name>-restore-key`` Secret (the private key), mounted by the restore Job alone;
  * a new volume ``<name>-restore-<runId>`` for the restored data directory (kept when the
    request is removed: it holds the restored database until you have switched to it);
  * the Job ``<name>-restore-<runId>``: ``pghoard/restore_backup.py`` in the pghoard image, with
    pghoard's Workload Identity (read access to the bucket) and a NetworkPolicy that lets it
    reach Google APIs and nothing else;

and removing the request deletes the Secret and the Job again. It never touches the running
database: switching to the restored directory is the README's "Restore" procedure.

Pure builders plus ``RestoreRequest``; ``infra/backup.py`` registers the resources.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import pulumi_kubernetes as k8s

from infra import names, pod_security
from infra.validation import check

RESTORE_KEY_FILE = "private-key.pem"
RESTORE_KEY_DIR = "/etc/pghoard-restore"
RESTORE_MOUNT = "/restore"
RESTORE_SCRIPT = "/opt/pghoard/bin/restore_backup.py"
_RUN_ID = re.compile(r"^[a-z0-9]([-a-z0-9]{0,18}[a-z0-9])?$")


@dataclass(frozen=True, kw_only=True)
class RestoreRequest:
    """``ha-celery:backup.restore``: restore the newest suitable backup into a new volume."""

    run_id: str
    """Names this restore's Job and volume; a new id is a new restore (the old volume stays)."""
    target_time: str | None = None
    """Point in time to stop WAL replay at (ISO 8601 with a zone, e.g.
    2030-01-01T12:00:00+00:00); None: replay to the end of the archived WAL."""
    storage_size_gib: int | None = None
    """Size of the new volume; None: the database volume's size."""
    storage_class: str | None = None
    """StorageClass of the new volume; None: the cluster's default."""

    def __post_init__(self) -> None:
        check(isinstance(self.run_id, str) and bool(_RUN_ID.match(self.run_id)),
              "RestoreRequest.run_id", self.run_id,
              "1-20 of a-z, 0-9 and '-' (it names the Job and the volume), e.g. '2030-01-01'")
        if self.target_time is not None:
            try:
                parsed = datetime.fromisoformat(self.target_time)
            except (TypeError, ValueError):
                parsed = None
            check(parsed is not None and parsed.tzinfo is not None,
                  "RestoreRequest.target_time", self.target_time,
                  "an ISO 8601 time with a zone, e.g. 2030-01-01T12:00:00+00:00")
        check(self.storage_size_gib is None or 1 <= self.storage_size_gib <= 64 * 1024,
              "RestoreRequest.storage_size_gib", self.storage_size_gib,
              "None (the database volume's size) or 1-65536 GiB")


def restore_labels(name: str, run_id: str) -> dict[str, str]:
    return names.labels("pghoard-restore", f"{name}-{run_id}", component="restore")


def restore_selector(name: str, run_id: str) -> dict[str, str]:
    return names.selector_labels("pghoard-restore", f"{name}-{run_id}")


def restore_command(request: RestoreRequest, *, config_path: str, pg_bin_dir: str) -> list[str]:
    command = [
        RESTORE_SCRIPT,
        "--config", config_path,
        "--private-key", f"{RESTORE_KEY_DIR}/{RESTORE_KEY_FILE}",
        "--target-dir", f"{RESTORE_MOUNT}/pgdata",
        "--pg-bin-dir", pg_bin_dir,
    ]
    if request.target_time:
        command += ["--recovery-target-time", request.target_time]
    return command


def restore_pod_spec(*, name: str, request: RestoreRequest, image: str, uid: int,
                     config_secret: str, config_path: str, config_dir: str, pg_bin_dir: str,
                     service_account: str, memory_mib: int, cpu_millicores: int,
                     extra_volumes: list[tuple[k8s.core.v1.VolumeArgs, str]]
                     ) -> k8s.core.v1.PodSpecArgs:
    """Pure: one attempt of ``restore_backup.py``; ``extra_volumes`` are (volume, mount path)
    pairs the storage needs (the local stack's backup volume, read-only)."""
    memory = f"{memory_mib}Mi"
    mounts = [
        k8s.core.v1.VolumeMountArgs(name="config", mount_path=config_dir, read_only=True),
        k8s.core.v1.VolumeMountArgs(name="restore-key", mount_path=RESTORE_KEY_DIR,
                                    read_only=True),
        k8s.core.v1.VolumeMountArgs(name="target", mount_path=RESTORE_MOUNT),
        k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp"),  # noqa: S108
        *(k8s.core.v1.VolumeMountArgs(name=volume.name, mount_path=path, read_only=True)
          for volume, path in extra_volumes),
    ]
    return k8s.core.v1.PodSpecArgs(
        # pghoard's own ServiceAccount: Workload Identity gives it read access to the bucket.
        service_account_name=service_account,
        automount_service_account_token=False,
        enable_service_links=False,
        restart_policy="Never",
        security_context=pod_security.pod_security_context(uid),
        containers=[k8s.core.v1.ContainerArgs(
            name="restore",
            image=image,
            command=restore_command(request, config_path=config_path, pg_bin_dir=pg_bin_dir),
            env=[k8s.core.v1.EnvVarArgs(name="HOME", value=f"{RESTORE_MOUNT}/home")],
            # Decompression, decryption and WAL replay: more than the daemon's share, and no
            # CPU limit (nothing else runs beside it that it could starve of its own accord).
            resources=k8s.core.v1.ResourceRequirementsArgs(
                requests={"cpu": f"{cpu_millicores}m", "memory": memory},
                limits={"memory": memory}),
            security_context=pod_security.container_security_context(uid),
            volume_mounts=mounts,
        )],
        volumes=[
            k8s.core.v1.VolumeArgs(name="config", secret=k8s.core.v1.SecretVolumeSourceArgs(
                secret_name=config_secret, default_mode=0o440)),
            k8s.core.v1.VolumeArgs(name="restore-key", secret=k8s.core.v1.SecretVolumeSourceArgs(
                secret_name=f"{name}-restore-key", default_mode=0o440)),
            k8s.core.v1.VolumeArgs(
                name="target", persistent_volume_claim=(
                    k8s.core.v1.PersistentVolumeClaimVolumeSourceArgs(
                        claim_name=f"{name}-restore-{request.run_id}"))),
            k8s.core.v1.VolumeArgs(name="tmp", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(
                size_limit="1Gi")),
            *(volume for volume, _ in extra_volumes),
        ],
    )
