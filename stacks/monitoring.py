"""Wires the platform's monitoring: who scrapes, what is scraped, and the Observability component.

Owns the composition only: the scraper every workload admits to its metrics port (GKE's managed
collectors on GCP, the user's Prometheus on ``local``, from ``ha-celery:observability``), the
scrape targets built from each workload's own selector labels and names (so a renamed component
cannot silently lose its scraping), the metric vocabulary from the broker's and the pools' Args
(so the rules and the cluster cannot disagree), and the notes the plan prints about where alerts
go. Holds no setting of its own and reads no config (``stacks/config.py`` does).

Does not build the exporters (each workload adds its sidecar or port when given a scraper) and
does not decide the rules (``infra/observability``).
"""

from __future__ import annotations

import pulumi

from infra import backup as backup_module
from infra import postgres as postgres_module
from infra.flower import flower_selector
from infra.network_policy import MetricsScraper
from infra.observability import scrape
from infra.observability.component import Observability, ObservabilityArgs
from infra.observability.routing import routing_summary
from infra.observability.sources import PlatformMetrics
from infra.rabbitmq import ObjectNames
from infra.rabbitmq import selector as rabbitmq_selector
from infra.web import web_selector
from stacks.config import StackConfig, WorkloadConfig

NAME = "observability"
"""The component's name: on GKE the managed Alertmanager's Secret and the rules carry it."""

# Component names the platform gives its workloads (stacks/platform.py); the scrape targets
# select their pods by the same names.
RABBITMQ = "rabbitmq"
POSTGRES = "postgres"
BACKUP = "backup"
WEB = "web"
FLOWER = "flower"


def metrics_scraper(config: StackConfig, workloads: WorkloadConfig) -> MetricsScraper | None:
    """The pods allowed to scrape the platform, or None when monitoring is switched off."""
    settings = workloads.observability
    if not settings.enabled:
        return None
    namespace, labels = settings.scraper(config.platform)
    return MetricsScraper(namespace=namespace, pod_labels=labels)


def platform_metrics(workloads: WorkloadConfig) -> PlatformMetrics:
    return PlatformMetrics(
        rabbitmq_version=workloads.rabbitmq.version,
        broker_replicas=workloads.rabbitmq.replicas,
        worker_queues=tuple(workloads.workers),
        dead_letter_queue=workloads.rabbitmq.dead_letter_queue,
        keda_enabled=workloads.keda is not None,
    )


def rabbitmq_scrape_tls(config: StackConfig) -> scrape.ScrapeTls:
    """The brokers serve metrics over HTTPS only (the stack always gives them its CA): verify
    them under the client Service's name, which their certificate lists (``rabbitmq_spec``)."""
    service = ObjectNames(RABBITMQ).client_service
    return scrape.ScrapeTls(server_name=f"{service}.{config.namespace}.svc")


def scrape_targets(config: StackConfig, workloads: WorkloadConfig,
                   metrics: PlatformMetrics) -> tuple[scrape.ScrapeTarget, ...]:
    """One target per job the rules read, each selecting its workload's pods."""
    namespace = config.namespace
    interval = workloads.observability.scrape_interval_seconds
    common = {"namespace": namespace, "interval_seconds": interval}
    targets = [
        *scrape.rabbitmq_targets(selector=rabbitmq_selector(ObjectNames(RABBITMQ)),
                                 rabbitmq=metrics.rabbitmq, tls=rabbitmq_scrape_tls(config),
                                 **common),
        scrape.flower_target(selector=flower_selector(FLOWER), **common),
        scrape.web_target(selector=web_selector(WEB), **common),
        scrape.postgres_target(selector=postgres_module.selector(POSTGRES), **common),
        scrape.backup_target(selector=backup_module.selector(BACKUP), **common),
    ]
    if workloads.keda is not None:
        targets.append(scrape.keda_target(namespace=workloads.keda.namespace,
                                          interval_seconds=interval))
    return tuple(targets)


def observability_args(config: StackConfig, workloads: WorkloadConfig,
                       ca_certificate: pulumi.Input[str] | None = None) -> ObservabilityArgs:
    settings = workloads.observability
    metrics = platform_metrics(workloads)
    return ObservabilityArgs(
        namespace=config.namespace,
        metrics=metrics,
        targets=scrape_targets(config, workloads, metrics),
        platform=config.platform,
        thresholds=settings.thresholds,
        routing=settings.routing(smtp_password=config.alert_smtp_password),
        project=config.gke.project if config.gke is not None else None,
        evaluation_interval_seconds=settings.evaluation_interval_seconds,
        # GKE's kube-state-metrics package (HPA) is enabled with managed collection (infra/gke.py).
        kube_state_metrics=config.on_gcp,
        ca_certificate=ca_certificate,
    )


def build(config: StackConfig, workloads: WorkloadConfig, opts: pulumi.ResourceOptions,
          *, keda_namespace: pulumi.Resource | None = None,
          ca_certificate: pulumi.Input[str] | None = None) -> Observability | None:
    """The Observability component (None when monitoring is switched off). Its objects wait for
    the platform's namespace (``opts``) and KEDA's, where the operator's PodMonitoring goes.
    ``ca_certificate``: the stack's CA, which GMP verifies the brokers' HTTPS metrics against."""
    if not workloads.observability.enabled:
        return None
    if keda_namespace is not None:
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            depends_on=[keda_namespace]))
    return Observability(NAME, observability_args(config, workloads, ca_certificate), opts=opts)


def plan_notes(config: StackConfig) -> list[str]:
    """What the plan (and `pulumi preview`) should say about monitoring: alerts that reach
    nobody, or no monitoring at all."""
    if config.workloads is None:
        return []
    settings = config.workloads.observability
    key = "ha-celery:observability"
    if not settings.enabled:
        return [f"{key}.enabled is false: nothing is scraped, no alert is evaluated and no "
                "dashboard exists"]
    routing = settings.routing(smtp_password=config.alert_smtp_password)
    if routing.goes_nowhere:
        return [f"{key}: {routing_summary(routing)}. Set {key}.emails and {key}.smtp "
                "(README \"Monitoring and alerts\")"]
    return []
