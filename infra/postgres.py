"""PostgreSQL for the platform's results: one StatefulSet, its volume, credentials and policy.

Owns the database server: a single-replica StatefulSet of the official image with a PVC, the
generated `postgresql.conf` / `pg_hba.conf` / init script (from `infra/postgres_config.py`),
four generated passwords (superuser, application, replication-only backup role, monitoring role)
kept in a Secret, the Secret that holds the application's connection URL, a ClusterIP Service and
a NetworkPolicy that admits only the platform's own pods (and, when the database is scraped, the
scraper to the postgres_exporter sidecar, whose role this component creates).

Deliberately does not do backups (`infra/backup.py` streams WAL and takes base backups through
the backup role and slot created here), high availability by replicas (one primary; recovery is
a restore, proven by the backup drill), or the stack's certificate authority (``infra/tls.py``):
given one, it issues the server's certificate, mounts it, accepts network clients over TLS only
and hands out a URL that verifies the server (``sslmode=verify-full``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from infra import names, pod_security
from infra.celery import SecretKeyRef
from infra.certificates import postgres_spec
from infra.network_policy import MetricsScraper, Peer, tcp
from infra.observability.postgres_exporter import (
    PostgresExporterArgs,
    exporter_container,
    monitoring_role_script,
)
from infra.observability.sources import POSTGRES_EXPORTER_PORT
from infra.postgres_config import (
    PostgresSettings,
    ServerTls,
    database_url,
    init_script,
    pg_hba_conf,
)
from infra.postgres_config import postgresql_conf as render_postgresql_conf
from infra.regional_disk import DISK_TYPES, RegionalDisk, node_affinity, storage_class_args
from infra.resource_options import child_options
from infra.stateful_storage import STATEFULSET_IGNORED_INPUTS, claim_args
from infra.tls import (
    CA_KEY,
    CERTIFICATE_KEY,
    PRIVATE_KEY_KEY,
    TRUST_BUNDLE_FILE,
    CertificateAuthority,
    tls_secret_args,
)
from infra.validation import check

POSTGRES_UID = 999
"""The official image's `postgres` user."""
APP_NAME = "postgres"
PORT = 5432
DATABASE_URL_KEY = "database-url"
"""Key of the database URL in the Secret named by ``PostgresDatabase.database_url_secret_name``:
workloads use ``env.valueFrom.secretKeyRef`` with this key, never the value itself."""

DATA_MOUNT = "/var/lib/postgresql/data"
PGDATA = f"{DATA_MOUNT}/pgdata"  # a sub-directory: the volume's root holds lost+found
CONFIG_DIR = "/etc/postgresql"
INIT_DIR = "/docker-entrypoint-initdb.d"
SECRETS_DIR = "/run/secrets/postgres"
TLS_DIR = "/etc/postgresql-tls"
"""The server's certificate, key and the CA, from the ``kubernetes.io/tls`` Secret."""
SUPERUSER_PASSWORD_KEY = "superuser-password"
APP_PASSWORD_KEY = "app-password"
BACKUP_PASSWORD_KEY = "backup-password"
MONITOR_PASSWORD_KEY = "monitor-password"
"""The exporter's monitoring role (used only when the database is scraped)."""
MONITORING_ROLE_SCRIPT = "20-monitoring-role.sh"

_IMAGE = re.compile(
    r"^(?:[^/]+/)*postgres:(?P<tag>(?P<major>\d+)\.\d+[\w.-]*)(?:@sha256:[a-f0-9]{64})?$"
)
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True, kw_only=True)
class PostgresArgs:
    """Inputs for PostgresDatabase. Only ``namespace`` is required."""

    namespace: pulumi.Input[str]
    image: str = "postgres:17.6-bookworm"
    """Official image pinned to a minor release (the tag's major version picks pghoard's
    client binaries); a digest may follow. Minor upgrades are a tag change; majors need
    pg_upgrade or a dump/restore."""
    storage_class: str | None = None
    """StorageClass of the data volume; None uses the cluster's default (or, with
    ``regional_disk``, the regional class this component creates)."""
    regional_disk: bool = False
    """Replicate the data volume synchronously across two zones (``infra/regional_disk.py``):
    the database survives the loss of its zone with RPO 0. GCP stacks only."""
    disk_zones: tuple[str, ...] = ()
    """With ``regional_disk``: the disk's two zones, both in ``zones``; default: the first two
    of ``zones``. The pod may run only there."""
    disk_type: str = "pd-ssd"
    """With ``regional_disk``: pd-ssd or pd-balanced."""
    zones: tuple[str, ...] = ()
    """The stack's zones (wired from ``ha-celery:zones``; empty on a local stack)."""
    storage_size_gib: int = 20
    memory_mib: int = 2048
    """Request = limit (Guaranteed memory: the database is the last pod the kernel OOM-kills);
    every memory setting and max_connections derive from it."""
    cpu_millicores: int = 500
    """CPU request. No CPU limit: CFS throttling turns a short burst into long query stalls."""
    database: str = "hacelery"
    app_user: str = "hacelery"
    archive_timeout_seconds: int = 60
    """Recovery point bound: a WAL segment is closed and streamed at least this often."""
    wal_keep_size_mib: int = 1024
    protect: bool = True
    """True: Pulumi refuses to delete or replace the StatefulSet and its claim (`pulumi up` and
    `pulumi destroy` stop with an error) until this is False again. Secure default; the stack's
    `ha-celery:protect` sets it."""
    certificate_authority: CertificateAuthority | None = None
    """The stack's CA (wired by the platform): the server gets a certificate for its Service's
    names, plain TCP is refused and the app URL verifies the server. None: plain TCP."""
    metrics_scraper: MetricsScraper | None = None
    """Who scrapes the database's metrics (wired by the platform): the pod gets the
    postgres_exporter sidecar with its least-privilege role and admits the scraper to the
    exporter's port only. None: no exporter."""

    def __post_init__(self) -> None:
        check(
            self.certificate_authority is None or isinstance(self.namespace, str),
            "PostgresArgs.namespace",
            self.namespace,
            "a plain string when a certificate authority is given (the certificate names it)",
        )
        check(
            bool(_IMAGE.match(self.image)),
            "PostgresArgs.image",
            self.image,
            "the official image pinned to a minor release, e.g. 'postgres:17.6-bookworm'",
        )
        check(
            self.storage_class is None or bool(_DNS_LABEL.match(self.storage_class)),
            "PostgresArgs.storage_class",
            self.storage_class,
            "None or a StorageClass name",
        )
        if self.regional_disk:
            self._check_regional_disk()
        check(
            1 <= self.storage_size_gib <= 64 * 1024,
            "PostgresArgs.storage_size_gib",
            self.storage_size_gib,
            "1-65536 GiB",
        )
        check(
            256 <= self.memory_mib <= 256 * 1024,
            "PostgresArgs.memory_mib",
            self.memory_mib,
            "256-262144 MiB",
        )
        check(
            100 <= self.cpu_millicores <= 64000,
            "PostgresArgs.cpu_millicores",
            self.cpu_millicores,
            "100-64000",
        )
        # The remaining fields are validated (with their own names) by PostgresSettings.
        self.settings()

    def _check_regional_disk(self) -> None:
        check(bool(self.zones), "PostgresArgs.regional_disk", self.regional_disk,
              "false on a stack without zones: regional persistent disks exist on GCP only")
        check(len(set(self.zones)) >= 2, "PostgresArgs.regional_disk", self.regional_disk,
              f"false, or at least two zones in ha-celery:zones (it has {list(self.zones)}): "
              "a regional disk is replicated across two of them")
        check(self.storage_class is None, "PostgresArgs.storage_class", self.storage_class,
              "unset while regionalDisk is true (the stack creates the regional StorageClass), "
              "or set regionalDisk: false to use a zonal class")
        zones = self.regional_disk_zones
        check(len(zones) == 2 and len(set(zones)) == 2 and set(zones) <= set(self.zones),
              "PostgresArgs.disk_zones", list(self.disk_zones),
              f"two different zones of the stack's zones ({', '.join(self.zones)}): the disk "
              "is replicated there and the pod may only run there")
        check(self.disk_type in DISK_TYPES, "PostgresArgs.disk_type", self.disk_type,
              f"one of {', '.join(DISK_TYPES)}")

    @property
    def regional_disk_zones(self) -> tuple[str, ...]:
        return self.disk_zones or tuple(dict.fromkeys(self.zones))[:2]

    @property
    def disk(self) -> RegionalDisk | None:
        """The regional disk, or None for a zonal volume."""
        if not self.regional_disk:
            return None
        zones = self.regional_disk_zones
        return RegionalDisk(zones=(zones[0], zones[1]), disk_type=self.disk_type)

    def settings(self) -> PostgresSettings:
        return PostgresSettings(
            memory_limit_mib=self.memory_mib,
            storage_size_gib=self.storage_size_gib,
            port=PORT,
            database=self.database,
            app_user=self.app_user,
            archive_timeout_seconds=self.archive_timeout_seconds,
            wal_keep_size_mib=self.wal_keep_size_mib,
            tls=self.server_tls,
        )

    @property
    def server_tls(self) -> ServerTls | None:
        if self.certificate_authority is None:
            return None
        return ServerTls(
            certificate_file=f"{TLS_DIR}/{CERTIFICATE_KEY}",
            key_file=f"{TLS_DIR}/{PRIVATE_KEY_KEY}",
            ca_file=f"{TLS_DIR}/{CA_KEY}",
        )

    @property
    def major_version(self) -> int:
        """PostgreSQL major version, from the image tag (pghoard needs matching binaries)."""
        match = _IMAGE.match(self.image)
        assert match is not None  # checked in __post_init__
        return int(match["major"])

    @property
    def image_tag(self) -> str:
        match = _IMAGE.match(self.image)
        assert match is not None
        return match["tag"]


def labels(name: str, args: PostgresArgs) -> dict[str, str]:
    return names.labels(APP_NAME, name, component="database", version=args.image_tag)


def selector(name: str) -> dict[str, str]:
    return names.selector_labels(APP_NAME, name)


def exporter_args(name: str) -> PostgresExporterArgs:
    """The exporter sidecar's inputs: its password is a key of the credentials Secret."""
    return PostgresExporterArgs(
        password=SecretKeyRef(name=f"{name}-credentials", key=MONITOR_PASSWORD_KEY),
        database_port=PORT)


def init_scripts(args: PostgresArgs) -> tuple[str, ...]:
    """The scripts of /docker-entrypoint-initdb.d, in the order the image runs them."""
    return ("10-roles.sh", *((MONITORING_ROLE_SCRIPT,) if args.metrics_scraper else ()))


def config_files(args: PostgresArgs, name: str = APP_NAME) -> dict[str, str]:
    """Pure: the ConfigMap's data (no secrets in it)."""
    settings = args.settings()
    files = {
        "postgresql.conf": render_postgresql_conf(settings),
        "pg_hba.conf": pg_hba_conf(settings),
        "10-roles.sh": init_script(settings, secrets_dir=SECRETS_DIR),
    }
    if args.metrics_scraper is not None:
        # Runs on a new database (the image's init directory) and at every start (postStart),
        # so a database created before monitoring existed, or a rotated password, is caught up.
        files[MONITORING_ROLE_SCRIPT] = monitoring_role_script(
            exporter_args(name), password_file=f"{SECRETS_DIR}/{MONITOR_PASSWORD_KEY}")
    return files


def monitoring_role_hook() -> k8s.core.v1.LifecycleHandlerArgs:
    """postStart: (re)apply the monitoring role once the server accepts TCP connections.

    Waiting for TCP rather than the socket skips the image's first-start server (socket only),
    while the init directory creates the role; the hook never fails the container (a failed
    postStart kills it): the exporter then cannot log in, which PostgresDown reports."""
    script = (f"for i in $(seq 120); do pg_isready --quiet --host 127.0.0.1 --port {PORT} "
              f"&& break; sleep 1; done; bash {INIT_DIR}/{MONITORING_ROLE_SCRIPT} "
              ">/tmp/monitoring-role.log 2>&1 || true")
    return k8s.core.v1.LifecycleHandlerArgs(
        exec_=k8s.core.v1.ExecActionArgs(command=["bash", "-c", script]))


def config_checksum(files: dict[str, str]) -> str:
    """Changes whenever a config file does, so the pod restarts onto the new file."""
    digest = hashlib.sha256()
    for key in sorted(files):
        digest.update(key.encode() + b"\0" + files[key].encode() + b"\0")
    return digest.hexdigest()[:16]


def postgres_container(args: PostgresArgs) -> k8s.core.v1.ContainerArgs:
    """Pure: the server container."""
    memory = f"{args.memory_mib}Mi"
    is_ready = ["pg_isready", "--host", "127.0.0.1", "--port", str(PORT), "--username", "postgres"]
    return k8s.core.v1.ContainerArgs(
        name="postgres",
        image=args.image,
        args=[
            "-c",
            f"config_file={CONFIG_DIR}/postgresql.conf",
            "-c",
            f"hba_file={CONFIG_DIR}/pg_hba.conf",
        ],
        ports=[k8s.core.v1.ContainerPortArgs(name="postgres", container_port=PORT)],
        env=[
            k8s.core.v1.EnvVarArgs(name="PGDATA", value=PGDATA),
            k8s.core.v1.EnvVarArgs(name="POSTGRES_USER", value="postgres"),
            # The image reads the password from the file: it never sits in the pod spec.
            k8s.core.v1.EnvVarArgs(
                name="POSTGRES_PASSWORD_FILE", value=f"{SECRETS_DIR}/{SUPERUSER_PASSWORD_KEY}"
            ),
            # Checksums catch silent storage corruption before it reaches a backup.
            k8s.core.v1.EnvVarArgs(
                name="POSTGRES_INITDB_ARGS",
                value="--data-checksums --auth-local=peer --auth-host=scram-sha-256",
            ),
        ],
        resources=k8s.core.v1.ResourceRequirementsArgs(
            requests={"cpu": f"{args.cpu_millicores}m", "memory": memory},
            limits={"memory": memory},
        ),
        # Crash recovery after an unclean stop can take minutes: the startup probe allows 15,
        # and liveness (which would restart it mid-recovery) only starts after that.
        startup_probe=k8s.core.v1.ProbeArgs(
            exec_=k8s.core.v1.ExecActionArgs(command=is_ready),
            period_seconds=10,
            failure_threshold=90,
            timeout_seconds=5,
        ),
        readiness_probe=k8s.core.v1.ProbeArgs(
            exec_=k8s.core.v1.ExecActionArgs(command=is_ready),
            period_seconds=10,
            failure_threshold=3,
            timeout_seconds=5,
        ),
        liveness_probe=k8s.core.v1.ProbeArgs(
            exec_=k8s.core.v1.ExecActionArgs(command=is_ready),
            period_seconds=30,
            failure_threshold=4,
            timeout_seconds=10,
        ),
        # SIGTERM is PostgreSQL's *smart* shutdown, which waits for every client to leave: the
        # grace period would run out and the kubelet would SIGKILL it (crash recovery on the
        # next start). A fast shutdown rolls back open transactions and stops cleanly.
        lifecycle=k8s.core.v1.LifecycleArgs(
            post_start=monitoring_role_hook() if args.metrics_scraper else None,
            pre_stop=k8s.core.v1.LifecycleHandlerArgs(
                exec_=k8s.core.v1.ExecActionArgs(
                    command=[
                        "pg_ctl",
                        "stop",
                        "--mode=fast",
                        "--wait",
                        "--timeout=50",
                        f"--pgdata={PGDATA}",
                    ]
                )
            )
        ),
        security_context=pod_security.container_security_context(POSTGRES_UID),
        volume_mounts=[
            k8s.core.v1.VolumeMountArgs(name="data", mount_path=DATA_MOUNT),
            k8s.core.v1.VolumeMountArgs(name="config", mount_path=CONFIG_DIR, read_only=True),
            k8s.core.v1.VolumeMountArgs(name="init", mount_path=INIT_DIR, read_only=True),
            k8s.core.v1.VolumeMountArgs(name="credentials", mount_path=SECRETS_DIR, read_only=True),
            *([k8s.core.v1.VolumeMountArgs(name="tls", mount_path=TLS_DIR, read_only=True)]
              if args.server_tls else []),
            # Read-only root filesystem: the socket directory and /tmp are the only writes
            # outside the data volume.
            k8s.core.v1.VolumeMountArgs(name="run", mount_path="/var/run/postgresql"),
            k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp"),  # noqa: S108
        ],
    )


def pod_spec(
    args: PostgresArgs, *, config_map_name: str, credentials_secret_name: str,
    tls_secret_name: str | None = None, name: str = APP_NAME,
) -> k8s.core.v1.PodSpecArgs:
    """Pure: the pod around the server container."""
    if args.server_tls and tls_secret_name is None:
        raise ValueError("pod_spec: TLS is on, so name the Secret holding the certificate")
    disk = args.disk
    return k8s.core.v1.PodSpecArgs(
        security_context=pod_security.pod_security_context(POSTGRES_UID),
        affinity=node_affinity(disk) if disk is not None else None,
        # Room for the preStop's 50 s fast shutdown.
        termination_grace_period_seconds=60,
        automount_service_account_token=False,
        enable_service_links=False,
        containers=[postgres_container(args),
                    *([exporter_container(exporter_args(name))] if args.metrics_scraper else [])],
        volumes=[
            k8s.core.v1.VolumeArgs(
                name="config",
                config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(
                    name=config_map_name,
                    items=[
                        k8s.core.v1.KeyToPathArgs(key=key, path=key)
                        for key in ("postgresql.conf", "pg_hba.conf")
                    ],
                ),
            ),
            k8s.core.v1.VolumeArgs(
                name="init",
                config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(
                    name=config_map_name,
                    default_mode=0o555,
                    items=[k8s.core.v1.KeyToPathArgs(key=script, path=script)
                           for script in init_scripts(args)],
                ),
            ),
            k8s.core.v1.VolumeArgs(
                name="credentials",
                secret=k8s.core.v1.SecretVolumeSourceArgs(
                    secret_name=credentials_secret_name, default_mode=0o440
                ),
            ),
            *([k8s.core.v1.VolumeArgs(
                name="tls",
                # 0440 with the files owned by root and group postgres (fsGroup): PostgreSQL
                # accepts a key owned by root only at u=rw,g=r or tighter.
                secret=k8s.core.v1.SecretVolumeSourceArgs(
                    secret_name=tls_secret_name, default_mode=0o440),
            )] if args.server_tls else []),
            k8s.core.v1.VolumeArgs(
                name="run",
                empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(medium="Memory", size_limit="16Mi"),
            ),
            k8s.core.v1.VolumeArgs(
                name="tmp", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit="1Gi")
            ),
        ],
    )


def statefulset_spec(
    name: str,
    args: PostgresArgs,
    *,
    service_name: str,
    config_map_name: str,
    credentials_secret_name: str,
    certificate_checksum: pulumi.Input[str] | None = None,
) -> k8s.apps.v1.StatefulSetSpecArgs:
    """Pure: one primary with its own volume. ``certificate_checksum`` (a digest of the
    server certificate) on the template restarts the server onto a renewed certificate."""
    return k8s.apps.v1.StatefulSetSpecArgs(
        replicas=1,
        service_name=service_name,
        selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector(name)),
        # Deleting or scaling the StatefulSet never deletes the data volume.
        persistent_volume_claim_retention_policy=(
            k8s.apps.v1.StatefulSetPersistentVolumeClaimRetentionPolicyArgs(
                when_deleted="Retain", when_scaled="Retain"
            )
        ),
        template=k8s.core.v1.PodTemplateSpecArgs(
            metadata=k8s.meta.v1.ObjectMetaArgs(
                labels=labels(name, args),
                annotations={
                    "hacelery/config-checksum": config_checksum(config_files(args, name)),
                    **({"hacelery/certificate-checksum": certificate_checksum}
                       if certificate_checksum is not None else {}),
                },
            ),
            spec=pod_spec(
                args,
                config_map_name=config_map_name,
                credentials_secret_name=credentials_secret_name,
                tls_secret_name=f"{name}-tls",
                name=name,
            ),
        ),
        volume_claim_templates=[volume_claim_template(name, args)],
    )


def volume_claim_template(name: str, args: PostgresArgs) -> k8s.core.v1.PersistentVolumeClaimArgs:
    """Pure: the data volume (the claim itself is created by the component, see
    ``infra/stateful_storage.py``)."""
    return k8s.core.v1.PersistentVolumeClaimArgs(
        metadata=k8s.meta.v1.ObjectMetaArgs(name="data", labels=selector(name)),
        spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
            access_modes=["ReadWriteOnce"],
            storage_class_name=storage_class_name(name, args),
            resources=k8s.core.v1.VolumeResourceRequirementsArgs(
                requests={"storage": f"{args.storage_size_gib}Gi"}
            ),
        ),
    )


def storage_class_name(name: str, args: PostgresArgs) -> str | None:
    """The data volume's StorageClass: the regional one this component creates, the configured
    one, or None (the cluster's default)."""
    if args.regional_disk:
        # Names the type and the zones: a StorageClass's parameters are immutable, so another
        # type or pair of zones is a new class (and a new claim: see the README's migration).
        zones = "-".join(zone.rsplit("-", 1)[1] for zone in args.regional_disk_zones)
        return f"{name}-regional-{args.disk_type}-{zones}"
    return args.storage_class


def service_spec(name: str) -> k8s.core.v1.ServiceSpecArgs:
    """Pure: a stable virtual IP in front of the single pod (survives pod IP changes)."""
    return k8s.core.v1.ServiceSpecArgs(
        type="ClusterIP",
        selector=selector(name),
        ports=[k8s.core.v1.ServicePortArgs(name="postgres", port=PORT, target_port="postgres")],
    )


def client_peer(name: str) -> Peer:
    """The database's port, as a destination of its clients' egress."""
    return Peer(purpose="the database", pod_labels=selector(name), ports=(tcp(PORT),))


def network_policy_spec(name: str, args: PostgresArgs | None = None
                        ) -> k8s.networking.v1.NetworkPolicySpecArgs:
    """Pure: only the platform's own pods (the app, workers, pghoard) reach PostgreSQL, and
    the metrics scraper the exporter's port; PostgreSQL reaches nothing: it only answers
    (replies need no rule), resolves no name (its configuration and pg_hba.conf use addresses)
    and has no standby to stream to."""
    scraper = args.metrics_scraper if args is not None else None
    return k8s.networking.v1.NetworkPolicySpecArgs(
        pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector(name)),
        policy_types=["Ingress", "Egress"],
        egress=[],
        ingress=[
            k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                from_=[
                    k8s.networking.v1.NetworkPolicyPeerArgs(
                        pod_selector=k8s.meta.v1.LabelSelectorArgs(
                            match_labels=names.platform_pod_selector()
                        )
                    )
                ],
                ports=[k8s.networking.v1.NetworkPolicyPortArgs(protocol="TCP", port=PORT)],
            ),
            *([scraper.peer(POSTGRES_EXPORTER_PORT).ingress_rule()] if scraper else []),
        ],
    )


class PostgresDatabase(pulumi.ComponentResource):
    """The platform's PostgreSQL server, its credentials and who may reach it."""

    database_url: pulumi.Output[str]
    """The application's connection URL (secret). Prefer the Secret below in workloads."""
    database_url_secret_name: pulumi.Output[str]
    """Name of the Secret holding the URL under the key ``DATABASE_URL_KEY`` ("database-url")."""
    service_name: pulumi.Output[str]
    host: pulumi.Output[str]
    """The Service's cluster DNS name."""
    backup_user: pulumi.Output[str]
    """The replication-only role for the backup daemon."""
    backup_password: pulumi.Output[str]
    """Its password (secret)."""
    replication_slot: pulumi.Output[str]
    """Physical replication slot reserved for the backup's WAL stream."""
    client_peer: Peer
    """The database port as a NetworkPolicy peer (its clients' egress)."""
    database_url_checksum: pulumi.Output[str]
    """Digest of the application URL without its password (not secret): app pods carry it on
    their template, so a new database name, user or host rolls them."""

    def __init__(
        self, name: str, args: PostgresArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("hacelery:postgres:PostgresDatabase", name, None, opts)
        child = child_options(self, opts)
        settings = args.settings()
        metadata_labels = labels(name, args)

        def metadata(suffix: str) -> k8s.meta.v1.ObjectMetaArgs:
            return k8s.meta.v1.ObjectMetaArgs(
                name=f"{name}-{suffix}" if suffix else name,
                namespace=args.namespace,
                labels=metadata_labels,
            )

        # Alphanumeric only: the app URL needs no escaping; 32 characters is ~190 bits.
        passwords = {
            key: random.RandomPassword(f"{name}-{key}", length=32, special=False, opts=child)
            # The monitoring role's password exists whether or not the exporter runs, so
            # switching monitoring off and on never generates a new credential.
            for key in (SUPERUSER_PASSWORD_KEY, APP_PASSWORD_KEY, BACKUP_PASSWORD_KEY,
                        MONITOR_PASSWORD_KEY)
        }
        credentials = k8s.core.v1.Secret(
            f"{name}-credentials",
            metadata=metadata("credentials"),
            type="Opaque",
            string_data={key: password.result for key, password in passwords.items()},
            opts=child,
        )
        files = config_files(args, name)
        config_map = k8s.core.v1.ConfigMap(
            f"{name}-config", metadata=metadata("config"), data=files, opts=child
        )
        service = k8s.core.v1.Service(
            f"{name}-service", metadata=metadata(""), spec=service_spec(name), opts=child
        )
        host = pulumi.Output.concat(
            service.metadata.name,
            ".",
            pulumi.Output.from_input(args.namespace),
            ".svc.cluster.local",
        )
        ca_file = TRUST_BUNDLE_FILE if settings.tls is not None else None
        url = pulumi.Output.secret(
            pulumi.Output.all(host, passwords[APP_PASSWORD_KEY].result).apply(
                lambda values: database_url(
                    user=settings.app_user,
                    password=values[1],
                    host=values[0],
                    port=PORT,
                    database=settings.database,
                    ca_file=ca_file,
                )
            )
        )
        certificate_checksum = None
        tls_dependencies: list[pulumi.Resource] = []
        if args.certificate_authority is not None:
            assert isinstance(args.namespace, str)  # checked by PostgresArgs
            certificate = args.certificate_authority.issue(
                f"{name}-certificate",
                postgres_spec(namespace=args.namespace, service=name),
                opts=child,
            )
            tls_dependencies.append(k8s.core.v1.Secret(
                f"{name}-tls",
                **tls_secret_args(name=f"{name}-tls", namespace=args.namespace,
                                  labels=metadata_labels, certificate=certificate),
                opts=child,
            ))
            # A renewed certificate restarts the server onto it (PostgreSQL reads the files at
            # start and on reload); clients trust the CA, so they only reconnect.
            certificate_checksum = certificate.certificate_pem.apply(
                lambda pem: hashlib.sha256(pem.encode()).hexdigest()[:16])
        url_secret = k8s.core.v1.Secret(
            f"{name}-app-url",
            metadata=metadata("app-url"),
            type="Opaque",
            string_data={DATABASE_URL_KEY: url},
            opts=child,
        )
        claim_dependencies: list[pulumi.Resource] = []
        disk = args.disk
        if disk is not None:
            class_name = storage_class_name(name, args)
            assert class_name is not None
            claim_dependencies.append(k8s.storage.v1.StorageClass(
                f"{name}-storage-class",
                storage_class_args(class_name, disk, metadata_labels),
                opts=child,
            ))
        # The data volume as a resource of its own, adopted by the StatefulSet: a bigger
        # storageSizeGib is an online expansion (infra/stateful_storage.py).
        claim = k8s.core.v1.PersistentVolumeClaim(
            f"{name}-data-0",
            claim_args(volume_claim_template(name, args), statefulset=name, ordinal=0,
                       namespace=args.namespace, labels=metadata_labels),
            opts=child_options(self, opts, retain_on_delete=True, protect=args.protect,
                               depends_on=claim_dependencies),
        )
        k8s.apps.v1.StatefulSet(
            f"{name}-statefulset",
            metadata=metadata(""),
            spec=statefulset_spec(
                name,
                args,
                service_name=f"{name}",
                config_map_name=f"{name}-config",
                credentials_secret_name=f"{name}-credentials",
                certificate_checksum=certificate_checksum,
            ),
            opts=child_options(self, opts,
                               depends_on=[credentials, config_map, claim, *tls_dependencies],
                               ignore_changes=list(STATEFULSET_IGNORED_INPUTS),
                               protect=args.protect),
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-ingress",
            metadata=metadata("ingress"),
            spec=network_policy_spec(name, args),
            opts=child,
        )

        self.database_url = url
        self.database_url_checksum = host.apply(lambda value: config_checksum({
            DATABASE_URL_KEY: database_url(user=settings.app_user, password="generated",
                                           host=value, port=PORT, database=settings.database,
                                           ca_file=ca_file)}))
        self.database_url_secret_name = url_secret.metadata.name
        self.client_peer = client_peer(name)
        self.service_name = service.metadata.name
        self.host = host
        self.backup_user = pulumi.Output.from_input(settings.backup_user)
        self.backup_password = pulumi.Output.secret(passwords[BACKUP_PASSWORD_KEY].result)
        self.replication_slot = pulumi.Output.from_input(settings.replication_slot)
        self.register_outputs(
            {
                "database_url": self.database_url,
                "database_url_secret_name": self.database_url_secret_name,
                "service_name": self.service_name,
                "host": self.host,
                "backup_user": self.backup_user,
                "backup_password": self.backup_password,
                "replication_slot": self.replication_slot,
                "database_url_checksum": self.database_url_checksum,
            }
        )
