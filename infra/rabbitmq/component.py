"""The `RabbitMQCluster` component (type ``hacelery:rabbitmq:RabbitMQCluster``): generated
credentials, the Secrets and ConfigMap, Services, RBAC, the StatefulSet, the disruption budget and
the NetworkPolicy, wired from the package's pure builders.

Does not read stack config and holds no settings of its own: everything comes from
`RabbitMQClusterArgs`.
"""

from __future__ import annotations

import hashlib

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from infra.app_pod import timeout_minutes
from infra.certificates import rabbitmq_spec
from infra.network_policy import Peer
from infra.rabbitmq.args import (
    ADMIN_PASSWORD_KEY,
    ADMIN_USERNAME_KEY,
    BROKER_URL_KEY,
    QUEUE_MONITOR_CA_KEY,
    QUEUE_MONITOR_TLS_KEY,
    QUEUE_MONITOR_URL_KEY,
    ObjectNames,
    RabbitMQClusterArgs,
    metadata,
    object_labels,
)
from infra.rabbitmq.files import (
    broker_url,
    broker_url_checksum,
    config_map_data,
    queue_monitor_url,
    runtime_checksum,
    server_secret_data,
)
from infra.rabbitmq.network import (
    amqp_peer,
    client_service_args,
    headless_service_args,
    network_policy_spec,
)
from infra.rabbitmq.statefulset import (
    pod_disruption_budget_spec,
    role_rules,
    statefulset_spec,
    volume_claim_template,
)
from infra.resource_options import child_options
from infra.stateful_storage import STATEFULSET_IGNORED_INPUTS, claim_args
from infra.tls import tls_secret_args


class RabbitMQCluster(pulumi.ComponentResource):
    """A RabbitMQ cluster on Kubernetes with quorum queues as the replicated default."""

    broker_url: pulumi.Output[str]
    """Secret: Celery's failover list, one amqp:// URL per pod, `;`-separated."""
    broker_secret_name: pulumi.Output[str]
    """Kubernetes Secret holding `broker_url` under key BROKER_URL_KEY; workloads reference it."""
    client_service_name: pulumi.Output[str]
    """ClusterIP Service for AMQP, management and metrics (``client_ports``: 5671/15671/15691
    with TLS, 5672/15672/15692 without)."""
    headless_service_name: pulumi.Output[str]
    """Headless Service giving every pod a stable DNS name."""
    admin_secret_name: pulumi.Output[str]
    """Kubernetes Secret with the administrator's `username` and `password`."""
    queue_monitor_secret_name: pulumi.Output[str]
    amqp_peer: Peer
    """The brokers' AMQP port as a NetworkPolicy peer (app pods' egress)."""
    """Kubernetes Secret with the monitor user's management-API URL under QUEUE_MONITOR_URL_KEY
    (KEDA's RabbitMQ scaler, protocol http)."""
    statefulset_name: pulumi.Output[str]
    broker_url_checksum: pulumi.Output[str]
    """Digest of what the broker Secret holds (not secret itself): app pods carry it on their
    template, so a new failover list (replicas, vhost, user) rolls them."""

    def __init__(
        self, name: str, args: RabbitMQClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("hacelery:rabbitmq:RabbitMQCluster", name, None, opts)
        names = ObjectNames(name)
        child = child_options(self, opts)

        def password(suffix: str, length: int) -> random.RandomPassword:
            # Letters and digits only: safe in URLs, rabbitmq.conf and shell without escaping.
            return random.RandomPassword(
                f"{name}-{suffix}", length=length, special=False, opts=child
            )

        cookie = password("erlang-cookie", 64)
        admin_password = password("admin-password", 32)
        app_password = password("app-password", 32)
        monitor_password = password("monitor-password", 32)

        def secret(suffix: str, object_name: str, data: dict[str, pulumi.Input[str]],
                   namespace: str | None = None) -> k8s.core.v1.Secret:
            # Each value is marked secret on its own, so the keys stay reviewable in a plan.
            meta = metadata(object_name, names, args)
            if namespace is not None:
                meta = metadata(object_name, names, args, namespace=namespace)
            return k8s.core.v1.Secret(
                f"{name}-{suffix}", metadata=meta, type="Opaque",
                string_data={key: pulumi.Output.secret(value) for key, value in data.items()},
                opts=child)

        secret("erlang-cookie", names.cookie_secret, {"cookie": cookie.result})
        server_files = pulumi.Output.all(admin_password.result, app_password.result,
                                         monitor_password.result).apply(
            lambda passwords: server_secret_data(args, *passwords))
        server_secret = secret(
            "server-config", names.server_secret,
            {key: server_files.apply(lambda files, key=key: files[key])
             for key in ("default_user.conf", "definitions.json")})
        admin_secret = secret(
            "admin", names.admin_secret,
            {ADMIN_USERNAME_KEY: args.admin_username, ADMIN_PASSWORD_KEY: admin_password.result})
        url = pulumi.Output.secret(app_password.result.apply(
            lambda p: broker_url(names, args, p)))
        broker_secret = secret("broker", names.broker_secret, {BROKER_URL_KEY: url})
        certificate_checksum = None
        tls_dependencies: list[pulumi.Resource] = []
        monitor_tls: dict[str, pulumi.Input[str]] = {}
        if args.certificate_authority is not None:
            certificate = args.certificate_authority.issue(
                f"{name}-certificate",
                rabbitmq_spec(namespace=args.namespace, statefulset=names.statefulset,
                              headless_service=names.headless_service,
                              client_service=names.client_service, replicas=args.replicas),
                opts=child)
            tls_dependencies.append(k8s.core.v1.Secret(
                f"{name}-tls",
                **tls_secret_args(name=names.tls_secret, namespace=args.namespace,
                                  labels=object_labels(names, args), certificate=certificate),
                opts=child))
            # A renewed certificate rolls the nodes onto it, one at a time, each draining
            # first; clients trust the CA, so they only reconnect.
            certificate_checksum = certificate.certificate_pem.apply(
                lambda pem: hashlib.sha256(pem.encode()).hexdigest()[:16])
            # KEDA's RabbitMQ scaler: `tls: enable` and the CA it verifies the management API
            # against (TriggerAuthentication parameters), next to the URL in KEDA's namespace.
            monitor_tls = {QUEUE_MONITOR_TLS_KEY: "enable",
                           QUEUE_MONITOR_CA_KEY: certificate.ca_certificate_pem}
        monitor_secret = secret(
            "queue-monitor", names.queue_monitor_secret,
            {QUEUE_MONITOR_URL_KEY: monitor_password.result.apply(
                lambda p: queue_monitor_url(names, args, p)), **monitor_tls},
            namespace=args.queue_monitor_secret_namespace)

        data = config_map_data(names, args)
        config_map = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata=metadata(names.config_map, names, args),
            data=data,
            opts=child,
        )

        service_account = k8s.core.v1.ServiceAccount(
            f"{name}-service-account",
            metadata=metadata(names.service_account, names, args),
            automount_service_account_token=False,
            opts=child,
        )
        role = k8s.rbac.v1.Role(
            f"{name}-peer-discovery",
            metadata=metadata(f"{names.base}-peer-discovery", names, args),
            rules=role_rules(),
            opts=child,
        )
        role_binding = k8s.rbac.v1.RoleBinding(
            f"{name}-peer-discovery-binding",
            metadata=metadata(f"{names.base}-peer-discovery", names, args),
            role_ref=k8s.rbac.v1.RoleRefArgs(
                api_group="rbac.authorization.k8s.io", kind="Role", name=role.metadata.name
            ),
            subjects=[
                k8s.rbac.v1.SubjectArgs(
                    kind="ServiceAccount",
                    name=service_account.metadata.name,
                    namespace=args.namespace,
                )
            ],
            opts=child,
        )

        headless = k8s.core.v1.Service(
            f"{name}-headless", **headless_service_args(names, args), opts=child
        )
        client = k8s.core.v1.Service(
            f"{name}-client", **client_service_args(names, args), opts=child
        )
        # One claim per node, created before the StatefulSet adopts it: a bigger storageSize is
        # then an online expansion, never a new StatefulSet (infra/stateful_storage.py).
        # retain_on_delete: a node removed from the program (fewer replicas) keeps its data.
        claims = [
            k8s.core.v1.PersistentVolumeClaim(
                f"{name}-data-{ordinal}",
                claim_args(volume_claim_template(args), statefulset=names.statefulset,
                           ordinal=ordinal, namespace=args.namespace,
                           labels=object_labels(names, args)),
                opts=child_options(self, opts, retain_on_delete=True, protect=args.protect))
            for ordinal in range(args.replicas)
        ]
        statefulset = k8s.apps.v1.StatefulSet(
            f"{name}-statefulset",
            metadata=metadata(names.statefulset, names, args),
            spec=statefulset_spec(names, args, runtime_checksum(names, args),
                                  certificate_checksum=certificate_checksum),
            opts=child_options(
                self, opts,
                depends_on=[config_map, server_secret, headless, role_binding, *claims,
                            *tls_dependencies],
                ignore_changes=list(STATEFULSET_IGNORED_INPUTS),
                protect=args.protect,
                # Pods become Ready only once the whole cluster formed; Pulumi's await would
                # otherwise time out on a slow first formation and mark the update failed. The
                # provider deletes in the foreground and waits for the pods, each of which may
                # take its whole grace period draining (await.go: 10 minutes by default).
                custom_timeouts=pulumi.CustomTimeouts(
                    create="20m", update="30m",
                    delete=timeout_minutes(args.termination_grace_seconds + 300)),
            ),
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata=metadata(names.base, names, args),
            spec=pod_disruption_budget_spec(names),
            opts=child,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-network-policy",
            metadata=metadata(names.base, names, args),
            spec=network_policy_spec(names, args),
            opts=child,
        )

        self.broker_url = url
        self.broker_secret_name = broker_secret.metadata.name
        self.client_service_name = client.metadata.name
        self.amqp_peer = amqp_peer(names, args)
        self.headless_service_name = headless.metadata.name
        self.admin_secret_name = admin_secret.metadata.name
        self.statefulset_name = statefulset.metadata.name
        self.queue_monitor_secret_name = monitor_secret.metadata.name
        self.broker_url_checksum = pulumi.Output.from_input(broker_url_checksum(names, args))
        self.register_outputs(
            {
                "broker_url": self.broker_url,
                "broker_secret_name": self.broker_secret_name,
                "client_service_name": self.client_service_name,
                "headless_service_name": self.headless_service_name,
                "admin_secret_name": self.admin_secret_name,
                "statefulset_name": self.statefulset_name,
                "queue_monitor_secret_name": self.queue_monitor_secret_name,
                "broker_url_checksum": self.broker_url_checksum,
            }
        )
