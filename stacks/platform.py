"""Composes one stack's platform from its validated config and exports what users need.

Owns the wiring between components (which output feeds which input) and the Kubernetes provider:
built from the GKE kubeconfig on GCP stacks, from a kubeconfig context on `local`. Does not read
config (``stacks/config.py`` does) and holds no resource settings of its own: every value comes
from a component's Args, either set in the stack file or the Args default.
"""

from __future__ import annotations

import dataclasses

import pulumi
import pulumi_kubernetes as k8s

from infra.app_pod import secrets_checksum
from infra.app_secrets import AppSecrets, AppSecretsArgs
from infra.backup import PgHoardBackup
from infra.celery import AppRuntimeArgs, QueueAutoscalingArgs, SecretKeyRef, WorkerPool
from infra.dns import PublicDns
from infra.edge import WebEdge, WebEdgeArgs
from infra.flower import Flower
from infra.gke import GkeCluster
from infra.google_apis import PrivateGoogleApis, PrivateGoogleApisArgs
from infra.images import AppImage
from infra.keda import CONTROL_PLANE_PORTS as KEDA_CONTROL_PLANE_PORTS
from infra.keda import Keda
from infra.namespace import PlatformNamespace, PlatformNamespaceArgs
from infra.network_policy import Peer, tcp
from infra.postgres import DATABASE_URL_KEY, PostgresDatabase
from infra.rabbitmq import (
    BROKER_URL_KEY,
    MANAGEMENT_TLS_PORT,
    QUEUE_MONITOR_CA_KEY,
    QUEUE_MONITOR_TLS_KEY,
    ObjectNames,
    RabbitMQCluster,
)
from infra.rabbitmq import selector as rabbitmq_selector
from infra.scheduler import SchedulerJob
from infra.sweeper import JobSweeper
from infra.tls import (
    CertificateAuthority,
    CertificateAuthorityArgs,
    TrustBundle,
    TrustBundleArgs,
)
from infra.web import WebApp
from stacks import monitoring
from stacks.config import StackConfig, WorkloadConfig
from stacks.monitoring import BACKUP, FLOWER, POSTGRES, RABBITMQ, WEB

PROVIDER_SETTINGS = {
    # Server-side apply reports field conflicts instead of silently overwriting edits made by
    # controllers (KEDA/HPA replica counts, for instance).
    "enable_server_side_apply": True,
    # A changed Secret or ConfigMap is updated in place. Without these the provider replaces
    # it, and with a fixed name that means delete, then create (provider/pkg/provider/diff.go
    # forceNewProperties): a pod starting in between cannot mount or read it. The pods that read
    # them roll through the checksum annotations on their templates.
    "enable_secret_mutable": True,
    "enable_config_map_mutable": True,
}


def kubernetes_provider(config: StackConfig, gke: GkeCluster | None) -> k8s.Provider:
    """The provider every Kubernetes object of the stack is created with."""
    if gke is not None:
        return k8s.Provider(
            "kubernetes",
            kubeconfig=gke.kubeconfig,
            **PROVIDER_SETTINGS,
            # Every Kubernetes object waits for the node pools (and the control plane's
            # firewall rule): created with the cluster alone, Deployments would wait for nodes
            # that do not exist yet and run out of their await time.
            opts=pulumi.ResourceOptions(depends_on=gke.workload_prerequisites),
        )
    # local: no kubeconfig passed, so the provider reads ~/.kube/config (or $KUBECONFIG) and
    # uses the named context, or the current one.
    return k8s.Provider("kubernetes", context=config.kube_context, **PROVIDER_SETTINGS)


def kubernetes_api_cidrs(config: StackConfig) -> tuple[str, ...]:
    """Where pods reach the Kubernetes API: the private control plane's range on GCP; unknown
    (any address) on `local`."""
    return (config.gke.master_ipv4_cidr,) if config.gke is not None else ()


def management_peer(namespace: str) -> Peer:
    """The RabbitMQ management API (queue depth for KEDA), in the platform's namespace."""
    return Peer(purpose="RabbitMQ's management API (queue depth)", namespace=namespace,
                pod_labels=rabbitmq_selector(ObjectNames(RABBITMQ)),
                ports=(tcp(MANAGEMENT_TLS_PORT),))


def front_door(config: StackConfig, workloads: WorkloadConfig, domain: str) -> WebEdge | None:
    """IAP, Cloud Armor and the TLS policy in front of the web app (GCP stacks with a domain)."""
    if workloads.access is None or workloads.edge is None or config.gke is None:
        return None
    return WebEdge("web-edge", WebEdgeArgs(
        project=config.gke.project, domain=domain, access=workloads.access,
        edge=workloads.edge,
        oauth_client_secret=(config.iap_oauth_client_secret
                             if workloads.access.oauth_client_id else None)))


def longest_grace(workloads: WorkloadConfig | None) -> int:
    """The longest termination grace period of any pod the stack runs in its namespace."""
    if workloads is None:
        return 30
    return max(
        30,
        workloads.rabbitmq.termination_grace_seconds,
        workloads.web.termination_grace_period_seconds,
        *(pool.termination_grace_period_seconds for pool in workloads.workers.values()),
    )


def build(config: StackConfig) -> dict[str, pulumi.Output]:
    """Create every resource of the stack; returns the stack outputs (also exported)."""
    outputs: dict[str, pulumi.Output] = {}
    gke = dns = None
    if config.on_gcp:
        assert config.gke is not None
        gke_args = config.gke
        if config.workloads is not None and config.workloads.keda is not None:
            # The private control plane must reach KEDA's webhook and metrics API server.
            gke_args = dataclasses.replace(gke_args, control_plane_ingress_ports=tuple(
                sorted({*gke_args.control_plane_ingress_ports, *KEDA_CONTROL_PLANE_PORTS})))
        gke = GkeCluster("gke", gke_args)
        # Pods reach Google APIs at one private range, which their NetworkPolicies can name.
        # Workloads wait for the zone: pghoard's first upload must not go to a public address
        # its policy refuses.
        google_apis = PrivateGoogleApis("google-apis", PrivateGoogleApisArgs(
            project=gke_args.project, network=gke.network_id))
        gke.workload_prerequisites.extend(google_apis.records)
        outputs["cluster_name"] = gke.cluster_name
        outputs["kubeconfig"] = gke.kubeconfig
        if config.dns is not None:
            dns = PublicDns("dns", config.dns)
            outputs["address"] = dns.address
            outputs["name_servers"] = dns.name_servers
            outputs["ds_record"] = dns.ds_record

    provider = kubernetes_provider(config, gke)
    namespace = PlatformNamespace(
        "platform", PlatformNamespaceArgs(
            name=config.namespace, protect=config.protect,
            longest_termination_grace_seconds=longest_grace(config.workloads)),
        opts=pulumi.ResourceOptions(provider=provider))
    outputs["namespace"] = namespace.name
    for note in monitoring.plan_notes(config):
        pulumi.log.warn(note)
    if config.workloads is not None:
        # Everything in the namespace waits for it (names are plain strings, so the dependency
        # has to be explicit).
        in_namespace = pulumi.ResourceOptions(provider=provider, depends_on=[namespace])
        outputs.update(build_workloads(config, config.workloads, dns, in_namespace))

    for key, value in outputs.items():
        pulumi.export(key, value)
    return outputs


def build_workloads(config: StackConfig, workloads: WorkloadConfig, dns: PublicDns | None,
                    opts: pulumi.ResourceOptions) -> dict[str, pulumi.Output]:
    """The broker, the database and its backups, and the Celery workload wired to them."""
    replace = dataclasses.replace
    # Every scraped workload admits this scraper to its metrics port, and nothing else to it.
    scraper = monitoring.metrics_scraper(config, workloads)
    # One certificate authority per stack: servers get certificates from it, every client
    # trusts it (and nothing else) through the trust bundle its pods mount.
    authority = CertificateAuthority("tls", CertificateAuthorityArgs(
        stack=config.stack, policy=workloads.certificates))
    trust_bundle = TrustBundle("trust-bundle", TrustBundleArgs(namespace=config.namespace),
                               ca=authority, opts=opts)
    keda = Keda("keda", replace(
        workloads.keda, control_plane_cidrs=kubernetes_api_cidrs(config),
        queue_monitor=management_peer(config.namespace), metrics_scraper=scraper,
    ), opts=pulumi.ResourceOptions(provider=opts.provider)) if workloads.keda else None
    # The queue-monitor Secret goes into KEDA's namespace (the only one KEDA may read).
    rabbitmq = RabbitMQCluster(RABBITMQ, replace(
        workloads.rabbitmq, kubernetes_api_cidrs=kubernetes_api_cidrs(config),
        certificate_authority=authority, metrics_scraper=scraper,
    ), opts=pulumi.ResourceOptions.merge(
        opts, pulumi.ResourceOptions(depends_on=[keda.namespace_resource] if keda else [])))
    postgres = PostgresDatabase(POSTGRES, replace(
        workloads.postgres, certificate_authority=authority, metrics_scraper=scraper), opts=opts)
    # The app's pods need the broker and the database from their first second (the migrate
    # initContainer, /readyz, the workers' connection): created after both are Ready, they start
    # once instead of crash-looping into long back-offs while the cluster forms.
    after_broker_and_database = pulumi.ResourceOptions.merge(
        opts, pulumi.ResourceOptions(depends_on=[rabbitmq, postgres]))

    pghoard_image = AppImage("pghoard-image", workloads.pghoard_image)
    backup = PgHoardBackup(BACKUP, replace(
        workloads.backup,
        image=pghoard_image.image_ref,
        database_host=postgres.host,
        replication_user=postgres.backup_user,
        replication_password=postgres.backup_password,
        replication_slot=postgres.replication_slot,
        trust_bundle=trust_bundle.config_map_name,
        database_peer=postgres.client_peer,
        database_volume_gib=workloads.postgres.storage_size_gib,
        metrics_scraper=scraper,
    ), opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[postgres])))

    app_image = AppImage("app-image", workloads.app_image)
    secret_settings = {}
    app_secrets_checksum: pulumi.Input[str] = ""
    if workloads.app_secret_names:
        app_secrets = AppSecrets("app-secrets", AppSecretsArgs(
            namespace=config.namespace, keys=workloads.app_secret_names,
            values=config.app_secret_values), opts=opts)
        secret_settings = app_secrets.references
        app_secrets_checksum = app_secrets.checksum
    runtime = AppRuntimeArgs(
        namespace=config.namespace,
        image=app_image.image_ref,
        broker_url=SecretKeyRef(name=rabbitmq.broker_secret_name, key=BROKER_URL_KEY),
        database_url=SecretKeyRef(name=postgres.database_url_secret_name, key=DATABASE_URL_KEY),
        settings=workloads.web.runtime.settings,
        secret_settings=secret_settings,
        trust_bundle=trust_bundle.config_map_name,
        broker_peer=rabbitmq.amqp_peer,
        database_peer=postgres.client_peer,
        secrets_checksum=pulumi.Output.all(
            rabbitmq.broker_url_checksum, postgres.database_url_checksum, app_secrets_checksum,
        ).apply(lambda parts: secrets_checksum(*parts)),
    )

    for queue, pool in workloads.workers.items():
        scaling = pool.autoscaling
        if isinstance(scaling, QueueAutoscalingArgs):
            assert keda is not None
            scaling = replace(scaling, queue_monitor_secret_name=rabbitmq.queue_monitor_secret_name,
                              queue_monitor_tls_keys=(QUEUE_MONITOR_TLS_KEY, QUEUE_MONITOR_CA_KEY),
                              depends_on=(keda.release,))
        WorkerPool(f"worker-{queue}", replace(pool, runtime=runtime, autoscaling=scaling),
                   opts=after_broker_and_database)

    ingress = workloads.web.ingress
    web_opts = after_broker_and_database
    if ingress is not None and dns is not None:
        edge = front_door(config, workloads, ingress.domain)
        ingress = replace(ingress, global_address_name=dns.address_name,
                          edge=edge.backend if edge else None)
        if edge is not None:
            # The Ingress controller attaches the policies by name: they must exist first.
            web_opts = pulumi.ResourceOptions.merge(web_opts,
                                                    pulumi.ResourceOptions(depends_on=[edge]))
    web = WebApp(WEB, replace(workloads.web, runtime=runtime, ingress=ingress,
                              metrics_scraper=scraper), opts=web_opts)
    flower = Flower(FLOWER, replace(workloads.flower, runtime=runtime, metrics_scraper=scraper),
                    opts=after_broker_and_database)
    SchedulerJob("scheduler", replace(workloads.scheduler, runtime=runtime),
                 opts=after_broker_and_database)
    JobSweeper("job-sweeper", replace(workloads.sweeper, runtime=runtime),
               opts=after_broker_and_database)

    observability = monitoring.build(
        config, workloads, opts, keda_namespace=keda.namespace_resource if keda else None,
        ca_certificate=authority.certificate_pem)

    return {
        **({"alert_routing": observability.alert_routing} if observability else {}),
        "app_image": app_image.image_ref,
        "web_url": web.url,
        "flower_service": flower.service_name,
        "rabbitmq_service": rabbitmq.client_service_name,
        "rabbitmq_admin_secret": rabbitmq.admin_secret_name,
        "database_service": postgres.service_name,
        "backup_bucket": backup.bucket_name,
        # Secret: `pulumi stack output --show-secrets backup_restore_key` before a destroy that
        # keeps the bucket, or its backups can no longer be decrypted.
        "backup_restore_key": backup.restore_private_key,
    }
