"""pghoard: continuous, encrypted, throttled, monitored backups of the platform's PostgreSQL.

Owns the backup daemon and where its backups live:
  * on GCP stacks a GCS bucket (uniform bucket-level access, public access prevention enforced,
    versioning, lifecycle rules) and a Google service account that may use that bucket only,
    bound to the pghoard Kubernetes ServiceAccount through Workload Identity: no key file exists;
  * on the local stack (no GCP at all) a PVC that pghoard's `local` storage writes to;
  * the encryption key pair (backups are encrypted in the pod before upload with the public key;
    the private key stays in the stack's encrypted state and reaches the cluster only while a
    restore is requested, see ``infra/backup_restore.py``);
  * a single-replica pghoard Deployment (Recreate: two daemons must never stream from the same
    replication slot), whose `pghoard.json` comes from `infra/pghoard_config.py`, with CPU and
    memory limits and a rate-limited pg_basebackup, and whose readiness probe fails when the
    newest base backup is too old, WAL stops arriving, or pghoard raised an alert.

Runs a restore only when ``PgHoardBackupArgs.restore`` asks for one (the restore-key Secret, a
new volume and a Job; ``infra/backup_restore.py``), into a new volume, never over the live
database. Does not create PostgreSQL roles (the backup role and slot come from
`infra/postgres.py`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s
import pulumi_tls as tls

from infra import names, pod_security
from infra.backup_restore import (
    RESTORE_KEY_FILE,
    RestoreRequest,
    restore_labels,
    restore_pod_spec,
    restore_selector,
)
from infra.images import validate_image_reference
from infra.network_policy import GKE_METADATA_SERVER, GOOGLE_APIS, KUBE_DNS, MetricsScraper, Peer
from infra.pghoard_config import (
    GoogleStorage,
    LocalStorage,
    PgHoardPaths,
    PgHoardSettings,
    ReplicationNode,
    basebackup_wrapper_script,
    pghoard_config,
    render,
)
from infra.resource_options import child_options
from infra.tls import TRUST_BUNDLE_FILE, trust_bundle_mount, trust_bundle_volume
from infra.validation import check

PGHOARD_UID = 999
"""The pghoard image is built on the official postgres image and runs as its `postgres` user."""
APP_NAME = "pghoard"
CONFIG_FILE = "pghoard.json"
CONFIG_DIR = "/etc/pghoard"
WORK_DIR = "/var/lib/pghoard"
PG_VERSION_DIR = "/etc/pghoard-pg-version"
WRAPPER_DIR = "/etc/pghoard-bin"
LOCAL_STORAGE_DIR = "/var/lib/pghoard-backups"
CHECK_COMMAND = "/opt/pghoard/bin/check_backup.py"
WORKLOAD_IDENTITY_ANNOTATION = "iam.gke.io/gcp-service-account"

# Bucket-scoped roles only. objectUser: read, write and delete objects (no IAM or ACL changes).
# legacyBucketReader: storage.buckets.get, which pghoard's Google driver calls at start-up and
# treats a 403 as a configuration error.
BUCKET_ROLES = ("roles/storage.objectUser", "roles/storage.legacyBucketReader")

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_PROJECT = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")


@dataclass(frozen=True, kw_only=True)
class GcsBackupStorage:
    """Backups in a GCS bucket created here (GCP stacks)."""

    project: str
    location: str
    """Bucket location, e.g. 'EU' or 'europe-west1' (a different region than the cluster
    survives a regional outage)."""
    bucket_name: str
    """Globally unique bucket name."""
    deletion_protection: bool = True
    """True: Pulumi refuses to delete or replace the bucket (`pulumi destroy` stops with an
    error). Follows `ha-celery:protect` unless set on its own."""
    delete_with_stack: bool = False
    """False (default): `pulumi destroy` leaves the bucket and every backup in the project
    (retainOnDelete), even once protection is off, so a teardown never deletes backups as a side
    effect. True (disposable stacks): destroy deletes the bucket with every object in it
    (force_destroy)."""
    noncurrent_retention_days: int = 14
    """Days a deleted or overwritten object stays recoverable as a noncurrent version."""
    audit_data_access: bool = True
    """Cloud Audit Logs record every read, write and delete of Cloud Storage objects in the
    project with the caller's identity (Data Access logs for storage.googleapis.com): who read
    or deleted a backup is answerable. The setting is project-wide for Cloud Storage, so it logs
    other buckets' traffic too (billed as Cloud Logging ingestion); false leaves the project's
    audit configuration alone."""

    def __post_init__(self) -> None:
        check(
            bool(_PROJECT.match(self.project)),
            "GcsBackupStorage.project",
            self.project,
            "a GCP project id (6-30 of a-z 0-9 '-')",
        )
        check(
            bool(re.match(r"^[A-Za-z0-9-]{2,40}$", self.location)),
            "GcsBackupStorage.location",
            self.location,
            "a GCS location such as 'EU'",
        )
        GoogleStorage(project_id=self.project, bucket_name=self.bucket_name)  # name rules
        check(
            1 <= self.noncurrent_retention_days <= 365,
            "GcsBackupStorage.noncurrent_retention_days",
            self.noncurrent_retention_days,
            "1-365",
        )


@dataclass(frozen=True, kw_only=True)
class LocalBackupStorage:
    """Backups on a PVC (the local stack, which has no cloud)."""

    storage_size_gib: int = 20
    storage_class: str | None = None

    def __post_init__(self) -> None:
        check(
            1 <= self.storage_size_gib <= 64 * 1024,
            "LocalBackupStorage.storage_size_gib",
            self.storage_size_gib,
            "1-65536 GiB",
        )
        check(
            self.storage_class is None or bool(_DNS_LABEL.match(self.storage_class)),
            "LocalBackupStorage.storage_class",
            self.storage_class,
            "None or a StorageClass name",
        )


@dataclass(frozen=True, kw_only=True)
class PgHoardBackupArgs:
    """Inputs for PgHoardBackup. The connection fields come from PostgresDatabase's outputs."""

    namespace: pulumi.Input[str]
    image: pulumi.Input[str]
    """The pghoard image built from `pghoard/Dockerfile`, pinned by tag or digest."""
    storage: GcsBackupStorage | LocalBackupStorage
    database_host: pulumi.Input[str]
    replication_user: pulumi.Input[str]
    replication_password: pulumi.Input[str]
    replication_slot: pulumi.Input[str] = "pghoard"
    database_port: int = 5432
    postgres_major_version: int = 17
    """Must match the server (PostgresArgs.major_version): pghoard picks its binaries by it."""
    # The policy defaults live in PgHoardSettings (the generator), once.
    site: str = PgHoardSettings.site
    basebackup_interval_hours: int = PgHoardSettings.basebackup_interval_hours
    basebackup_count: int = PgHoardSettings.basebackup_count
    """Base backups kept; older ones and the WAL only they need are deleted by pghoard."""
    basebackup_max_rate_mib: int = PgHoardSettings.basebackup_max_rate_kib // 1024
    """MiB/s the server may spend sending a base backup (pg_basebackup --max-rate)."""
    compression_algorithm: str = PgHoardSettings.compression_algorithm
    max_basebackup_age_hours: float = 26.0
    """Readiness fails past this (interval + time for one backup to finish)."""
    max_wal_age_minutes: float = 60.0
    """Readiness fails when no WAL segment was stored for this long."""
    cpu_millicores: int = 500
    """CPU limit (request is half): compression can never take more than this from the node."""
    memory_mib: int = 512
    """Memory request = limit."""
    scratch_size_gib: int = 4
    """Local scratch for WAL on its way to storage (an emptyDir with this size limit)."""
    restore: RestoreRequest | None = None
    """``ha-celery:backup.restore``: a restore to run now (its Job, a new volume, and the
    restore-key Secret exist only while this is set). None: the private key stays out of the
    cluster."""
    database_volume_gib: int = 20
    """The database volume's size (wired from PostgreSQL): the default size of a restore's."""
    database_peer: Peer | None = None
    """The database's pods and port (wired from the PostgreSQL component) for the NetworkPolicy;
    None: pghoard may reach no database (a component under test)."""
    protect: bool = True
    """True: Pulumi refuses to delete or replace the encryption key (a new key cannot read the
    old backups) and the local backup volume (`pulumi up` and `pulumi destroy` stop with an
    error) until this is False again. Secure default; the stack's `ha-celery:protect` sets it."""
    trust_bundle: pulumi.Input[str] | None = None
    """ConfigMap with the stack's CA (``infra.tls.TrustBundle``): the WAL stream and base
    backups then connect with ``sslmode=verify-full`` against it. None: libpq prefers TLS."""
    metrics_scraper: MetricsScraper | None = None
    """Who scrapes metrics (wired by the platform): the pod gets the backup-freshness exporter
    sidecar and admits the scraper to that port only. None: no sidecar."""

    def __post_init__(self) -> None:
        if isinstance(self.image, str):  # an Output (a freshly built image) is pinned by digest
            validate_image_reference(self.image, field="PgHoardBackupArgs.image")
        check(
            isinstance(self.storage, GcsBackupStorage | LocalBackupStorage),
            "PgHoardBackupArgs.storage",
            self.storage,
            "GcsBackupStorage(...) or LocalBackupStorage(...)",
        )
        check(
            1 <= self.database_port <= 65535,
            "PgHoardBackupArgs.database_port",
            self.database_port,
            "a TCP port",
        )
        check(
            13 <= self.postgres_major_version <= 18,
            "PgHoardBackupArgs.postgres_major_version",
            self.postgres_major_version,
            "13-18 (what pghoard 2.7 supports)",
        )
        check(
            self.max_basebackup_age_hours > self.basebackup_interval_hours,
            "PgHoardBackupArgs.max_basebackup_age_hours",
            self.max_basebackup_age_hours,
            f"more than basebackup_interval_hours ({self.basebackup_interval_hours}), or "
            "every scheduled backup would fail the check",
        )
        check(
            5 <= self.max_wal_age_minutes <= 24 * 60,
            "PgHoardBackupArgs.max_wal_age_minutes",
            self.max_wal_age_minutes,
            "5-1440",
        )
        check(
            100 <= self.cpu_millicores <= 8000,
            "PgHoardBackupArgs.cpu_millicores",
            self.cpu_millicores,
            "100-8000",
        )
        check(
            256 <= self.memory_mib <= 16384,
            "PgHoardBackupArgs.memory_mib",
            self.memory_mib,
            "256-16384",
        )
        check(
            1 <= self.scratch_size_gib <= 1024,
            "PgHoardBackupArgs.scratch_size_gib",
            self.scratch_size_gib,
            "1-1024",
        )
        check(
            1 <= self.basebackup_max_rate_mib <= 1024,
            "PgHoardBackupArgs.basebackup_max_rate_mib",
            self.basebackup_max_rate_mib,
            "1-1024",
        )
        self.settings()  # the policy fields are validated by PgHoardSettings

    def settings(self) -> PgHoardSettings:
        # One thread each: the pod's CPU limit is small on purpose, and pghoard's defaults
        # count the *node's* cores.
        return PgHoardSettings(
            site=self.site,
            basebackup_interval_hours=self.basebackup_interval_hours,
            basebackup_count=self.basebackup_count,
            basebackup_max_rate_kib=self.basebackup_max_rate_mib * 1024,
            compression_algorithm=self.compression_algorithm,
            compression_threads=1,
            transfer_threads=2,
            basebackup_threads=1,
            basebackup_chunks_in_progress=2,
        )


def pg_bin_directory(major_version: int) -> str:
    return f"/usr/lib/postgresql/{major_version}/bin"


def deployed_paths(args: PgHoardBackupArgs) -> PgHoardPaths:
    """Where pghoard reads and writes inside its pod."""
    return PgHoardPaths(
        backup_location=f"{WORK_DIR}/scratch",
        alert_file_dir=WORK_DIR,
        json_state_file_path=f"{WORK_DIR}/pghoard_state.json",
        maintenance_mode_file=f"{WORK_DIR}/maintenance_mode_file",
        pg_data_directory=PG_VERSION_DIR,
        pg_bin_directory=pg_bin_directory(args.postgres_major_version),
        pg_basebackup_path=f"{WRAPPER_DIR}/pg_basebackup_throttled",
    )


def deployed_storage(args: PgHoardBackupArgs) -> GoogleStorage | LocalStorage:
    if isinstance(args.storage, GcsBackupStorage):
        return GoogleStorage(project_id=args.storage.project, bucket_name=args.storage.bucket_name)
    return LocalStorage(directory=LOCAL_STORAGE_DIR)


def config_text(
    args: PgHoardBackupArgs, *, host: str, user: str, password: str, slot: str, public_key_pem: str
) -> str:
    """Pure: the daemon's pghoard.json (public key only; no cloud credential of any kind)."""
    return render(
        pghoard_config(
            args.settings(),
            storage=deployed_storage(args),
            node=ReplicationNode(
                host=host, port=args.database_port, user=user, password=password, slot=slot,
                ca_file=TRUST_BUNDLE_FILE if args.trust_bundle is not None else None,
            ),
            paths=deployed_paths(args),
            public_key_pem=public_key_pem,
        )
    )


def support_files(args: PgHoardBackupArgs) -> dict[str, str]:
    """Pure: non-secret files for the pod (the throttled pg_basebackup, PG_VERSION)."""
    return {
        "pg_basebackup_throttled": basebackup_wrapper_script(
            pg_basebackup=f"{pg_bin_directory(args.postgres_major_version)}/pg_basebackup",
            max_rate_kib=args.basebackup_max_rate_mib * 1024,
        ),
        "PG_VERSION": f"{args.postgres_major_version}\n",
    }


def workload_identity_member(project: str, namespace: str, service_account: str) -> str:
    """The Kubernetes ServiceAccount as an IAM principal (GKE Workload Identity)."""
    return f"serviceAccount:{project}.svc.id.goog[{namespace}/{service_account}]"


def labels(name: str) -> dict[str, str]:
    return names.labels(APP_NAME, name, component="backup")


def selector(name: str) -> dict[str, str]:
    return names.selector_labels(APP_NAME, name)


def check_command(args: PgHoardBackupArgs) -> list[str]:
    return [
        CHECK_COMMAND,
        "--config",
        f"{CONFIG_DIR}/{CONFIG_FILE}",
        "--max-basebackup-age-hours",
        f"{args.max_basebackup_age_hours:g}",
        "--max-wal-age-minutes",
        f"{args.max_wal_age_minutes:g}",
    ]


def pghoard_container(args: PgHoardBackupArgs) -> k8s.core.v1.ContainerArgs:
    """Pure: the daemon, its limits and its probes."""
    memory = f"{args.memory_mib}Mi"
    mounts = [
        k8s.core.v1.VolumeMountArgs(name="config", mount_path=CONFIG_DIR, read_only=True),
        k8s.core.v1.VolumeMountArgs(name="support", mount_path=WRAPPER_DIR, read_only=True),
        k8s.core.v1.VolumeMountArgs(name="pg-version", mount_path=PG_VERSION_DIR, read_only=True),
        k8s.core.v1.VolumeMountArgs(name="work", mount_path=WORK_DIR),
        k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp"),  # noqa: S108
    ]
    if isinstance(args.storage, LocalBackupStorage):
        mounts.append(k8s.core.v1.VolumeMountArgs(name="backups", mount_path=LOCAL_STORAGE_DIR))
    if args.trust_bundle is not None:
        mounts.append(trust_bundle_mount())
    return k8s.core.v1.ContainerArgs(
        name="pghoard",
        image=args.image,
        command=["pghoard", "--short-log", "--config", f"{CONFIG_DIR}/{CONFIG_FILE}"],
        # pghoard writes the replication password to ~/.pgpass for pg_basebackup/pg_receivewal.
        env=[k8s.core.v1.EnvVarArgs(name="HOME", value=WORK_DIR)],
        resources=k8s.core.v1.ResourceRequirementsArgs(
            requests={"cpu": f"{args.cpu_millicores // 2}m", "memory": memory},
            # The CPU limit is the point here: compression and encryption of a base backup
            # can never take more than this from the node PostgreSQL runs on.
            limits={"cpu": f"{args.cpu_millicores}m", "memory": memory},
        ),
        startup_probe=k8s.core.v1.ProbeArgs(
            exec_=k8s.core.v1.ExecActionArgs(
                command=[CHECK_COMMAND, "--config", f"{CONFIG_DIR}/{CONFIG_FILE}", "--liveness"]
            ),
            period_seconds=5,
            failure_threshold=24,
            timeout_seconds=5,
        ),
        liveness_probe=k8s.core.v1.ProbeArgs(
            exec_=k8s.core.v1.ExecActionArgs(
                command=[CHECK_COMMAND, "--config", f"{CONFIG_DIR}/{CONFIG_FILE}", "--liveness"]
            ),
            period_seconds=30,
            failure_threshold=5,
            timeout_seconds=10,
        ),
        # Stale backups make the pod NotReady (visible in every dashboard and alert on unready
        # pods) without restarting it: a restart cannot fix a stale backup and would abort a
        # running one.
        readiness_probe=k8s.core.v1.ProbeArgs(
            exec_=k8s.core.v1.ExecActionArgs(command=check_command(args)),
            period_seconds=60,
            failure_threshold=1,
            timeout_seconds=10,
        ),
        security_context=pod_security.container_security_context(PGHOARD_UID),
        volume_mounts=mounts,
    )


def pod_spec(name: str, args: PgHoardBackupArgs) -> k8s.core.v1.PodSpecArgs:
    volumes = [
        k8s.core.v1.VolumeArgs(
            name="config",
            secret=k8s.core.v1.SecretVolumeSourceArgs(
                secret_name=f"{name}-config", default_mode=0o440
            ),
        ),
        k8s.core.v1.VolumeArgs(
            name="support",
            config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(
                name=f"{name}-support",
                default_mode=0o555,
                items=[
                    k8s.core.v1.KeyToPathArgs(
                        key="pg_basebackup_throttled", path="pg_basebackup_throttled"
                    )
                ],
            ),
        ),
        k8s.core.v1.VolumeArgs(
            name="pg-version",
            config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(
                name=f"{name}-support",
                default_mode=0o444,
                items=[k8s.core.v1.KeyToPathArgs(key="PG_VERSION", path="PG_VERSION")],
            ),
        ),
        # State, alert files and scratch survive container restarts (not pod deletion).
        k8s.core.v1.VolumeArgs(
            name="work",
            empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit=f"{args.scratch_size_gib}Gi"),
        ),
        k8s.core.v1.VolumeArgs(
            name="tmp", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit="1Gi")
        ),
    ]
    if isinstance(args.storage, LocalBackupStorage):
        volumes.append(
            k8s.core.v1.VolumeArgs(
                name="backups",
                persistent_volume_claim=(
                    k8s.core.v1.PersistentVolumeClaimVolumeSourceArgs(claim_name=f"{name}-backups")
                ),
            )
        )
    if args.trust_bundle is not None:
        volumes.append(trust_bundle_volume(args.trust_bundle))
    return k8s.core.v1.PodSpecArgs(
        service_account_name=name,
        # The GKE metadata server serves the Workload Identity token; the pod needs no
        # Kubernetes API token.
        automount_service_account_token=False,
        enable_service_links=False,
        security_context=pod_security.pod_security_context(PGHOARD_UID),
        termination_grace_period_seconds=60,
        containers=[pghoard_container(args), *backup_metrics_containers(args)],
        volumes=volumes,
    )


def backup_metrics_containers(args: PgHoardBackupArgs) -> list[k8s.core.v1.ContainerArgs]:
    """The backup-freshness exporter sidecar when the pod is scraped (none otherwise)."""
    if args.metrics_scraper is None:
        return []
    # Imported here: the exporter module builds on this one's paths and user.
    from infra.observability.backup_exporter import BackupExporterArgs, backup_exporter_container

    return [backup_exporter_container(BackupExporterArgs(image=args.image))]


def backup_ingress(args: PgHoardBackupArgs) -> tuple[Peer, ...]:
    """Only the metrics scraper, on the exporter's port (pghoard's API stays on loopback)."""
    if args.metrics_scraper is None:
        return ()
    from infra.observability.sources import BACKUP_METRICS_PORT

    return (args.metrics_scraper.peer(BACKUP_METRICS_PORT),)


CONFIG_CHECKSUM_ANNOTATION = "hacelery.io/config-checksum"


def config_checksum(files: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for key in sorted(files):
        digest.update(key.encode() + b"\0" + files[key].encode() + b"\0")
    return digest.hexdigest()[:16]


def deployment_spec(name: str, args: PgHoardBackupArgs,
                    checksum: pulumi.Input[str] | None = None) -> k8s.apps.v1.DeploymentSpecArgs:
    """Pure: the single pghoard replica. ``checksum`` (of pghoard.json without its password,
    and the support files) rolls the pod when the configuration changes: pghoard reads it at
    start, and the provider updates the Secret in place."""
    return k8s.apps.v1.DeploymentSpecArgs(
        replicas=1,
        # Recreate: the old daemon is gone before the new one starts, so two never stream from
        # the one replication slot or both take a base backup.
        strategy=k8s.apps.v1.DeploymentStrategyArgs(type="Recreate"),
        selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector(name)),
        template=k8s.core.v1.PodTemplateSpecArgs(
            metadata=k8s.meta.v1.ObjectMetaArgs(
                labels=labels(name),
                annotations={CONFIG_CHECKSUM_ANNOTATION: checksum} if checksum is not None
                else None),
            spec=pod_spec(name, args),
        ),
    )


def backup_egress(args: PgHoardBackupArgs) -> tuple[Peer, ...]:
    """Where pghoard (and a restore run from its image) may send: kube-dns, the database
    (WAL stream, base backups) and, with a bucket, Google's APIs through Private Google Access
    plus the GKE metadata server for its Workload Identity token. Nothing else: a compromised
    pghoard cannot send the database anywhere but Google Cloud Storage."""
    peers = [KUBE_DNS]
    if args.database_peer is not None:
        peers.append(args.database_peer)
    if isinstance(args.storage, GcsBackupStorage):
        peers += [GOOGLE_APIS, GKE_METADATA_SERVER]
    return tuple(peers)


def network_policy_spec(name: str,
                        args: PgHoardBackupArgs) -> k8s.networking.v1.NetworkPolicySpecArgs:
    """Pure: nothing may connect to pghoard (its API listens on loopback for the probes) but the
    metrics scraper to the exporter sidecar; it may send only to ``backup_egress``."""
    return k8s.networking.v1.NetworkPolicySpecArgs(
        pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector(name)),
        policy_types=["Ingress", "Egress"],
        ingress=[peer.ingress_rule() for peer in backup_ingress(args)],
        egress=[peer.egress_rule() for peer in backup_egress(args)],
    )


def bucket_lifecycle_rules(storage: GcsBackupStorage) -> list[gcp.storage.BucketLifecycleRuleArgs]:
    """Pure. pghoard deletes old base backups and their WAL itself; these rules only clean up
    after it: a deleted object lives on as a noncurrent version for a while (a mistaken
    deletion can be undone), and an upload interrupted by a pod restart does not linger."""
    return [
        gcp.storage.BucketLifecycleRuleArgs(
            action=gcp.storage.BucketLifecycleRuleActionArgs(type="Delete"),
            condition=gcp.storage.BucketLifecycleRuleConditionArgs(
                with_state="ARCHIVED", days_since_noncurrent_time=storage.noncurrent_retention_days
            ),
        ),
        gcp.storage.BucketLifecycleRuleArgs(
            action=gcp.storage.BucketLifecycleRuleActionArgs(type="AbortIncompleteMultipartUpload"),
            condition=gcp.storage.BucketLifecycleRuleConditionArgs(age=1),
        ),
    ]


def storage_audit_config_args(storage: GcsBackupStorage) -> gcp.projects.IAMAuditConfigArgs:
    """Pure: Data Access audit logs for Cloud Storage in the backup's project. ADMIN_READ covers
    reads of the bucket's IAM and settings; DATA_READ/DATA_WRITE every object read, write and
    delete, with the principal that made it (usage logs would give no identity)."""
    return gcp.projects.IAMAuditConfigArgs(
        project=storage.project,
        service="storage.googleapis.com",
        audit_log_configs=[
            gcp.projects.IAMAuditConfigAuditLogConfigArgs(log_type=log_type)
            for log_type in ("ADMIN_READ", "DATA_READ", "DATA_WRITE")
        ],
    )


def bucket_args(storage: GcsBackupStorage) -> gcp.storage.BucketArgs:
    """Pure: the backup bucket.

    No retention policy (bucket lock): it forbids deleting objects younger than the period, so
    pghoard's own rotation (basebackup_count) would fail and storage would only grow. Versioning
    plus the noncurrent-version rule and soft delete give the same "a deletion can be undone"
    safety without fighting pghoard.
    """
    return gcp.storage.BucketArgs(
        name=storage.bucket_name,
        project=storage.project,
        location=storage.location,
        storage_class="STANDARD",  # WAL is deleted within days: colder classes charge for that
        uniform_bucket_level_access=True,
        public_access_prevention="enforced",
        versioning=gcp.storage.BucketVersioningArgs(enabled=True),
        soft_delete_policy=gcp.storage.BucketSoftDeletePolicyArgs(
            retention_duration_seconds=7 * 24 * 3600
        ),
        lifecycle_rules=bucket_lifecycle_rules(storage),
        force_destroy=storage.delete_with_stack,
        labels={"part-of": names.PART_OF, "component": "backup"},
    )


class PgHoardBackup(pulumi.ComponentResource):
    """pghoard and its storage: WAL streaming and base backups of PostgreSQL."""

    bucket_name: pulumi.Output[str]
    """The GCS bucket (empty string on the local stack)."""
    google_service_account_email: pulumi.Output[str]
    """pghoard's Google identity (empty string on the local stack)."""
    config_secret_name: pulumi.Output[str]
    """Secret with pghoard.json (replication password, public key)."""
    restore_key_secret_name: pulumi.Output[str | None]
    """Secret with the private key (key ``private-key.pem``) while a restore is requested;
    None otherwise (the key is then nowhere in the cluster)."""
    deployment_name: pulumi.Output[str]
    restore_private_key: pulumi.Output[str]
    """The private key that decrypts the backups (secret). Save it before a `pulumi destroy`
    that keeps the bucket: the key lives only in the stack's encrypted state."""

    def __init__(
        self, name: str, args: PgHoardBackupArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("hacelery:backup:PgHoardBackup", name, None, opts)
        child = child_options(self, opts)
        object_labels = labels(name)

        def metadata(suffix: str, annotations: dict | None = None) -> k8s.meta.v1.ObjectMetaArgs:
            return k8s.meta.v1.ObjectMetaArgs(
                name=f"{name}-{suffix}" if suffix else name,
                namespace=args.namespace,
                labels=object_labels,
                annotations=annotations,
            )

        # Protected: a new key pair would leave every existing backup readable only with the
        # old private key, which the restore-key Secret would stop holding.
        key = tls.PrivateKey(f"{name}-encryption-key", algorithm="RSA", rsa_bits=4096,
                             opts=child_options(self, opts, protect=args.protect))
        config = pulumi.Output.secret(
            pulumi.Output.all(
                args.database_host,
                args.replication_user,
                args.replication_password,
                args.replication_slot,
                key.public_key_pem,
            ).apply(
                lambda values: config_text(
                    args,
                    host=values[0],
                    user=values[1],
                    password=values[2],
                    slot=values[3],
                    public_key_pem=values[4],
                )
            )
        )
        checksum = pulumi.Output.all(
            args.database_host, args.replication_user, args.replication_slot, key.public_key_pem,
        ).apply(lambda values: config_checksum({
            CONFIG_FILE: config_text(args, host=values[0], user=values[1],
                                     password="<generated>", slot=values[2],
                                     public_key_pem=values[3]),
            **support_files(args),
        }))
        config_secret = k8s.core.v1.Secret(
            f"{name}-config",
            metadata=metadata("config"),
            type="Opaque",
            string_data={CONFIG_FILE: config},
            opts=child,
        )
        support = k8s.core.v1.ConfigMap(
            f"{name}-support", metadata=metadata("support"), data=support_files(args), opts=child
        )

        dependencies: list[pulumi.Resource] = [config_secret, support]
        service_account_annotations: pulumi.Input[dict[str, str]] | None = None
        self.bucket_name = pulumi.Output.from_input("")
        self.google_service_account_email = pulumi.Output.from_input("")
        if isinstance(args.storage, GcsBackupStorage):
            storage = args.storage
            bucket = gcp.storage.Bucket(
                f"{name}-bucket",
                args=bucket_args(storage),
                opts=child_options(self, opts, protect=storage.deletion_protection,
                                   retain_on_delete=not storage.delete_with_stack),
            )
            account = gcp.serviceaccount.Account(
                f"{name}-gsa",
                project=storage.project,
                account_id=f"{name}-backup"[:30].rstrip("-"),
                display_name="pghoard backups of the platform's PostgreSQL",
                opts=child,
            )
            for role in BUCKET_ROLES:
                gcp.storage.BucketIAMMember(
                    f"{name}-bucket-{role.rsplit('.', 1)[1].lower()}",
                    bucket=bucket.name,
                    role=role,
                    member=account.email.apply(lambda email: f"serviceAccount:{email}"),
                    opts=child,
                )
            binding = gcp.serviceaccount.IAMMember(
                f"{name}-workload-identity",
                service_account_id=account.name,
                role="roles/iam.workloadIdentityUser",
                member=pulumi.Output.from_input(args.namespace).apply(
                    lambda namespace: workload_identity_member(storage.project, namespace, name)
                ),
                opts=child,
            )
            dependencies.append(binding)
            service_account_annotations = account.email.apply(
                lambda email: {WORKLOAD_IDENTITY_ANNOTATION: email}
            )
            if storage.audit_data_access:
                gcp.projects.IAMAuditConfig(
                    f"{name}-storage-audit",
                    args=storage_audit_config_args(storage),
                    opts=child,
                )
            self.bucket_name = bucket.name
            self.google_service_account_email = account.email
        else:
            dependencies.append(
                k8s.core.v1.PersistentVolumeClaim(
                    f"{name}-backups",
                    metadata=metadata("backups"),
                    spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                        access_modes=["ReadWriteOnce"],
                        storage_class_name=args.storage.storage_class,
                        resources=k8s.core.v1.VolumeResourceRequirementsArgs(
                            requests={"storage": f"{args.storage.storage_size_gib}Gi"}
                        ),
                    ),
                    # Backups outlive a broken release: never deleted by `pulumi up` replacements.
                    opts=child_options(self, opts, retain_on_delete=True, protect=args.protect),
                )
            )

        service_account = k8s.core.v1.ServiceAccount(
            f"{name}-ksa",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=name,
                namespace=args.namespace,
                labels=object_labels,
                annotations=service_account_annotations,
            ),
            automount_service_account_token=False,
            opts=child,
        )
        dependencies.append(service_account)
        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=metadata(""),
            spec=deployment_spec(name, args, checksum),
            opts=child_options(self, opts, depends_on=dependencies),
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-ingress",
            metadata=metadata("ingress"),
            spec=network_policy_spec(name, args),
            opts=child,
        )

        self.restore_key_secret_name = pulumi.Output.from_input(None)
        if args.restore is not None:
            self.restore_key_secret_name = self._restore(
                name, args, key, config_secret, service_account, object_labels, opts)

        self.config_secret_name = config_secret.metadata.name
        self.restore_private_key = pulumi.Output.secret(key.private_key_pem)
        self.deployment_name = deployment.metadata.name
        self.register_outputs(
            {
                "bucket_name": self.bucket_name,
                "google_service_account_email": self.google_service_account_email,
                "config_secret_name": self.config_secret_name,
                "restore_key_secret_name": self.restore_key_secret_name,
                "deployment_name": self.deployment_name,
                "restore_private_key": self.restore_private_key,
            }
        )

    def _restore(self, name: str, args: PgHoardBackupArgs, key: tls.PrivateKey,
                 config_secret: k8s.core.v1.Secret, service_account: k8s.core.v1.ServiceAccount,
                 object_labels: dict[str, str],
                 opts: pulumi.ResourceOptions | None) -> pulumi.Output[str]:
        """The requested restore: key Secret, target volume, Job and its NetworkPolicy."""
        request = args.restore
        assert request is not None
        child = child_options(self, opts)
        run_labels = restore_labels(name, request.run_id)
        restore_key = k8s.core.v1.Secret(
            f"{name}-restore-key",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{name}-restore-key",
                                                namespace=args.namespace, labels=object_labels),
            type="Opaque",
            string_data={RESTORE_KEY_FILE: key.private_key_pem},
            opts=child,
        )
        target = k8s.core.v1.PersistentVolumeClaim(
            f"{name}-restore-{request.run_id}",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{name}-restore-{request.run_id}",
                                                namespace=args.namespace, labels=run_labels),
            spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                access_modes=["ReadWriteOnce"],
                storage_class_name=request.storage_class,
                resources=k8s.core.v1.VolumeResourceRequirementsArgs(requests={
                    "storage": f"{request.storage_size_gib or args.database_volume_gib}Gi"})),
            # The restored database outlives the request: removing runId must not delete it.
            opts=child_options(self, opts, retain_on_delete=True),
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-restore-{request.run_id}-network-policy",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{name}-restore-{request.run_id}",
                                                namespace=args.namespace, labels=run_labels),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(
                    match_labels=restore_selector(name, request.run_id)),
                policy_types=["Ingress", "Egress"],
                ingress=[],
                # The storage (Google APIs) and DNS; not the live database.
                egress=[peer.egress_rule() for peer in backup_egress(
                    dataclasses.replace(args, database_peer=None))]),
            opts=child,
        )
        extra = []
        if isinstance(args.storage, LocalBackupStorage):
            extra.append((k8s.core.v1.VolumeArgs(
                name="backups", persistent_volume_claim=(
                    k8s.core.v1.PersistentVolumeClaimVolumeSourceArgs(
                        claim_name=f"{name}-backups", read_only=True))), LOCAL_STORAGE_DIR))
        k8s.batch.v1.Job(
            f"{name}-restore-{request.run_id}-job",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=f"{name}-restore-{request.run_id}", namespace=args.namespace,
                labels=run_labels,
                # `pulumi up` does not wait for the restore (it may take hours): follow it with
                # `kubectl logs job/<name>`.
                annotations={"pulumi.com/skipAwait": "true"}),
            spec=k8s.batch.v1.JobSpecArgs(
                # One attempt: a failed restore leaves its logs and a half-written volume to
                # look at; a new runId is a clean retry.
                backoff_limit=0,
                active_deadline_seconds=12 * 3600,
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=run_labels),
                    spec=restore_pod_spec(
                        name=name, request=request, image=args.image, uid=PGHOARD_UID,
                        config_secret=f"{name}-config", config_dir=CONFIG_DIR,
                        config_path=f"{CONFIG_DIR}/{CONFIG_FILE}",
                        pg_bin_dir=pg_bin_directory(args.postgres_major_version),
                        service_account=name, memory_mib=max(args.memory_mib, 1024),
                        cpu_millicores=args.cpu_millicores, extra_volumes=extra))),
            opts=child_options(
                self, opts, depends_on=[restore_key, target, config_secret, service_account],
                # A run keeps the spec it started with: a new image digest or setting must not
                # replace (re-run) a restore that already ran. A new runId is a new restore.
                ignore_changes=["spec"], delete_before_replace=True),
        )
        return restore_key.metadata.name
