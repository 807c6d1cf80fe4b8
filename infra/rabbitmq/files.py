"""RabbitMQ's runtime files and connection URLs: the non-secret ConfigMap data (rabbitmq.conf,
enabled_plugins, the container scripts), the secret files (default user, definitions), their
checksum, and the AMQP failover list and management URL the platform's clients receive.

Pure functions over `RabbitMQClusterArgs`; the file contents themselves come from
`infra/rabbitmq_config/` (shared with the local drill). Registers nothing.
"""

from __future__ import annotations

import hashlib
import urllib.parse

from infra import rabbitmq_config as config
from infra.quantities import quantity_bytes
from infra.rabbitmq.args import (
    BROKER_URL_KEY,
    ObjectNames,
    RabbitMQClusterArgs,
)


def broker_settings(names: ObjectNames, args: RabbitMQClusterArgs) -> config.BrokerSettings:
    memory = quantity_bytes(args.memory)
    return config.BrokerSettings(
        version=args.version,
        cluster_name=names.base,
        peer_discovery=config.KubernetesPeerDiscovery(
            headless_service=names.headless_service, namespace=args.namespace
        ),
        target_cluster_size=args.replicas,
        memory_high_watermark_bytes=int(memory * args.memory_high_watermark_ratio),
        disk_free_limit_bytes=quantity_bytes(args.disk_free_limit),
        definitions_path=f"{config.ContainerPaths().secret_dir}/definitions.json",
        permit_transient_nonexclusive_queues=args.permit_transient_nonexclusive_queues,
        tls=args.server_tls,
    )


ENV_FILE = "rabbitmq-env.conf"
INTER_NODE_TLS_FILE = "inter_node_tls.config"


def config_map_data(names: ObjectNames, args: RabbitMQClusterArgs) -> dict[str, str]:
    """Non-secret runtime files: rabbitmq.conf, enabled_plugins and the container scripts."""
    settings = broker_settings(names, args)
    config_dir = config.ContainerPaths().config_dir
    tls_files = {} if settings.tls is None else {
        # Read by the server script and every CLI tool (probes, preStop): TLS distribution.
        ENV_FILE: config.rabbitmq_env_conf(settings.tls, f"{config_dir}/{INTER_NODE_TLS_FILE}"),
        INTER_NODE_TLS_FILE: config.inter_node_tls_config(settings.tls),
    }
    return {
        **tls_files,
        "rabbitmq.conf": config.rabbitmq_conf(settings),
        "enabled_plugins": config.enabled_plugins(settings),
        "entrypoint.sh": config.entrypoint_script(
            version=args.version,
            statefulset=names.statefulset,
            headless_service=names.headless_service,
            namespace=args.namespace,
            replicas=args.replicas,
            file_descriptor_limit=args.file_descriptor_limit,
        ),
        "startup-check.sh": config.startup_check_script(
            version=args.version, expected_members=args.replicas
        ),
        "pre-stop.sh": config.prestop_script(
            quorum_wait_seconds=args.prestop_quorum_wait_seconds,
            drain_timeout_seconds=args.drain_timeout_seconds,
        ),
    }


def server_secret_data(
    args: RabbitMQClusterArgs, admin_password: str, app_password: str, monitor_password: str
) -> dict[str, str]:
    """Secret runtime files: the default (admin) user snippet and the definitions."""
    return {
        "default_user.conf": config.default_user_conf(args.admin_username, admin_password),
        "definitions.json": config.definitions_json(
            version=args.version,
            vhost=args.vhost,
            admin_username=args.admin_username,
            admin_password=admin_password,
            app_username=args.app_username,
            app_password=app_password,
            poison=args.poison_policy,
            monitor_username=args.monitor_username,
            monitor_password=monitor_password,
        ),
    }


def queue_monitor_url(names: ObjectNames, args: RabbitMQClusterArgs, password: str) -> str:
    """Management-API URL for KEDA's RabbitMQ scaler (protocol http; https with TLS), via the
    client Service."""
    user = urllib.parse.quote(args.monitor_username, safe="")
    secret = urllib.parse.quote(password, safe="")
    vhost = urllib.parse.quote(args.vhost, safe="")
    host = f"{names.client_service}.{args.namespace}.svc.cluster.local"
    ports = args.client_ports
    return f"{ports.http_scheme}://{user}:{secret}@{host}:{ports.management}/{vhost}"


def broker_urls(names: ObjectNames, args: RabbitMQClusterArgs, app_password: str) -> list[str]:
    """One AMQP URL per pod through the headless Service's per-pod DNS names."""
    user = urllib.parse.quote(args.app_username, safe="")
    password = urllib.parse.quote(app_password, safe="")
    vhost = urllib.parse.quote(args.vhost, safe="")
    ports = args.client_ports
    return [
        f"{ports.amqp_scheme}://{user}:{password}@{names.pod_host(ordinal, args.namespace)}:"
        f"{ports.amqp}/{vhost}"
        for ordinal in range(args.replicas)
    ]


def broker_url(names: ObjectNames, args: RabbitMQClusterArgs, app_password: str) -> str:
    """Celery's failover list: `;`-separated, tried in order, next one on connection loss."""
    return ";".join(broker_urls(names, args, app_password))



GENERATED = "<generated>"
"""Stands for a generated password in the checksums below: passwords change only when their
generator is replaced, and a digest of them would have to be a secret itself."""


def runtime_checksum(names: ObjectNames, args: RabbitMQClusterArgs) -> str:
    """Digest of every runtime file the pods read at start: the ConfigMap and the server
    Secret (users, vhost, policies), passwords left out. Written on the pod template, so a change
    rolls the nodes one at a time, each draining first."""
    files = config_map_data(names, args)
    for key, value in server_secret_data(args, GENERATED, GENERATED, GENERATED).items():
        files[f"secret/{key}"] = value
    return config_checksum(files)


def broker_url_checksum(names: ObjectNames, args: RabbitMQClusterArgs) -> str:
    """Digest of the failover list the app reads (hosts, vhost, user; not the password)."""
    return config_checksum({BROKER_URL_KEY: broker_url(names, args, GENERATED)})


def config_checksum(data: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for key in sorted(data):
        digest.update(key.encode() + b"\0" + data[key].encode() + b"\0")
    return digest.hexdigest()[:16]
