"""The ``Observability`` component: scrape targets, alert rules, routing and the dashboard.

On GKE stacks (``platform="gcp"``), with Managed Service for Prometheus enabled on the cluster:
one GMP ``PodMonitoring`` per scrape target, the alert rules as a ``Rules`` object in the
platform's namespace (and a ``ClusterRules`` for the rules that read KEDA's namespace), the
managed Alertmanager's configuration Secret in ``gmp-public``, and a Cloud Monitoring dashboard.
When a target is scraped over HTTPS: the ``scrape-ca`` Secret (the stack's CA certificate and
nothing else, since GMP's ``tls.ca`` reads Secrets only) and a Role + RoleBinding letting GMP's
collectors get that one Secret.

On the ``local`` stack there is no managed collection: the same targets, rules and routing are
published for any Prometheus the user runs, as a ConfigMap holding ``prometheus.yml`` (Kubernetes
pod discovery, GMP's labels) and ``rules.yaml``, a Secret holding ``alertmanager.yaml``, and the
Grafana dashboard in a ConfigMap labelled ``grafana_dashboard: "1"`` (the label Grafana's
dashboard sidecar, as in kube-prometheus-stack, picks up).

Outputs ``alert_routing``: where alerts go, or "alerts go nowhere" when no receiver is set, for
the plan to print. Does not own the exporters' containers, ports or NetworkPolicy rules (each
workload adds them from ``scrape``, ``postgres_exporter`` and ``backup_exporter``), nor the
enablement of managed collection on the cluster (the GKE component).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s
import yaml

from infra import names
from infra.observability import alerts, dashboard, routing, scrape
from infra.observability.sources import PlatformMetrics
from infra.resource_options import child_options
from infra.validation import check

Platform = Literal["gcp", "local"]
GRAFANA_DASHBOARD_LABEL = {"grafana_dashboard": "1"}


@dataclass(frozen=True, kw_only=True)
class ObservabilityArgs:
    """Inputs for Observability. ``namespace``, ``metrics`` and ``targets`` are required."""

    namespace: str
    metrics: PlatformMetrics
    targets: tuple[scrape.ScrapeTarget, ...]
    """Built with the ``scrape`` factories from each workload's selector labels."""
    platform: Platform = "gcp"
    thresholds: alerts.AlertThresholds = field(default_factory=alerts.AlertThresholds)
    routing: routing.AlertRoutingArgs = field(default_factory=routing.AlertRoutingArgs)
    project: str | None = None
    """GCP project of the dashboard (None: the provider's)."""
    evaluation_interval_seconds: int = 30
    """How often the rules are evaluated (GMP's default is 60 s; 30 s halves detection time)."""
    runbook_base: str = alerts.RUNBOOK_DOCUMENT
    """The README's path or https:// URL; alerts link to ``<base>#<alertname lowercased>``."""
    kube_state_metrics: bool = False
    """GKE's kube-state-metrics package is on: the dashboard adds pool replica counts."""
    ca_certificate: pulumi.Input[str] | None = None
    """The stack's CA certificate (public PEM). On ``gcp`` it fills the Secret the HTTPS targets'
    ``tls.ca_secret`` names; required there when any target has ``tls``."""

    def __post_init__(self) -> None:
        owner = "ObservabilityArgs"
        check(self.platform in ("gcp", "local"), f"{owner}.platform", self.platform,
              "'gcp' or 'local'")
        check(isinstance(self.metrics, PlatformMetrics), f"{owner}.metrics", self.metrics,
              "a PlatformMetrics")
        check(
            isinstance(self.targets, tuple)
            and bool(self.targets)
            and all(isinstance(t, scrape.ScrapeTarget) for t in self.targets),
            f"{owner}.targets",
            self.targets,
            "a tuple of ScrapeTarget (see infra/observability/scrape.py's factories)",
        )
        jobs = [t.job for t in self.targets]
        check(len(set(jobs)) == len(jobs), f"{owner}.targets", jobs, "one target per job")
        missing = sorted(set(self.metrics.jobs.all()) - set(jobs)
                         - (set() if self.metrics.keda_enabled else {self.metrics.jobs.keda}))
        check(not missing, f"{owner}.targets", missing,
              "a target for every job the alerts read (add the missing ones)")
        cas = {(t.tls.ca_secret, t.tls.ca_key) for t in self.targets if t.tls is not None}
        check(len(cas) <= 1, f"{owner}.targets", sorted(cas),
              "one CA Secret and key for every HTTPS target (the stack has one CA)")
        check(not cas or self.platform != "gcp" or self.ca_certificate is not None,
              f"{owner}.ca_certificate", None,
              "the stack's CA certificate: GMP verifies the HTTPS targets against it")
        # Fail here, not at `pulumi up`: the thresholds must fit the platform's queues.
        alerts.alert_rules(self.metrics, self.thresholds)
        alerts.rule_groups([], evaluation_interval_seconds=self.evaluation_interval_seconds,
                           runbook_base=self.runbook_base)


def rule_groups_for(args: ObservabilityArgs, scope: alerts.Scope | None) -> dict:
    return alerts.rule_groups(
        alerts.alert_rules(args.metrics, args.thresholds),
        scope=scope,
        evaluation_interval_seconds=args.evaluation_interval_seconds,
        runbook_base=args.runbook_base,
    )


def local_prometheus_files(args: ObservabilityArgs) -> dict[str, str]:
    """``prometheus.yml`` and ``rules.yaml`` for a Prometheus the user runs (local stack)."""
    config = scrape.prometheus_config(
        [scrape.kubernetes_scrape_config(target) for target in args.targets],
        rule_files=["rules.yaml"],
        scrape_interval_seconds=30,
        evaluation_interval_seconds=args.evaluation_interval_seconds,
    )
    header = "# Generated by infra/observability; point any Prometheus at it.\n"
    return {
        "prometheus.yml": header + yaml.safe_dump(config, sort_keys=False),
        "rules.yaml": alerts.render_rules_yaml(rule_groups_for(args, None)),
    }


def alertmanager_yaml(args: ObservabilityArgs) -> pulumi.Output[str]:
    """The Alertmanager configuration as a secret Output (webhook URLs and the SMTP password
    may be secrets from stack config)."""
    password = args.routing.smtp.password if args.routing.smtp is not None else None
    return pulumi.Output.secret(
        pulumi.Output.all(password, *args.routing.webhook_urls).apply(
            lambda values: routing.render_alertmanager_yaml(
                routing.alertmanager_config(
                    args.routing, smtp_password=values[0], webhook_urls=list(values[1:])
                ),
                args.routing,
            )
        )
    )


class Observability(pulumi.ComponentResource):
    """Scraping, alert rules, alert routing and the dashboard of one platform."""

    alert_routing: pulumi.Output[str]
    """Where alerts go (e-mail addresses, number of webhooks), or that they go nowhere."""
    alert_count: pulumi.Output[int]

    def __init__(
        self, name: str, args: ObservabilityArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("hacelery:observability:Observability", name, None, opts)
        # Each object waits for what the component waits for (the namespaces it lands in).
        child = child_options(self, opts)
        rules = alerts.alert_rules(args.metrics, args.thresholds)
        if args.platform == "gcp":
            self._gcp(name, args, child)
        else:
            self._local(name, args, child)
        self.alert_routing = pulumi.Output.from_input(routing.routing_summary(args.routing))
        self.alert_count = pulumi.Output.from_input(len(rules))
        self.register_outputs(
            {"alert_routing": self.alert_routing, "alert_count": self.alert_count}
        )

    def _gcp(self, name: str, args: ObservabilityArgs, child: pulumi.ResourceOptions) -> None:
        tls = next((t.tls for t in args.targets if t.tls is not None), None)
        if tls is not None:
            assert args.ca_certificate is not None  # checked by ObservabilityArgs
            self._scrape_ca(name, args.namespace, tls, args.ca_certificate, child)
        for target in args.targets:
            body = scrape.pod_monitoring_body(target)
            k8s.apiextensions.CustomResource(
                f"{name}-{target.job}", api_version=body["apiVersion"], kind=body["kind"],
                metadata=body["metadata"], spec=body["spec"], opts=child,
            )
        namespaced = routing.rules_body(f"{name}-alerts", args.namespace,
                                        rule_groups_for(args, "namespace"))
        k8s.apiextensions.CustomResource(
            f"{name}-rules", api_version=namespaced["apiVersion"], kind=namespaced["kind"],
            metadata=namespaced["metadata"], spec=namespaced["spec"], opts=child,
        )
        cluster_groups = rule_groups_for(args, "cluster")
        if cluster_groups["groups"]:
            cluster = routing.cluster_rules_body(f"{args.namespace}-{name}-alerts", cluster_groups)
            k8s.apiextensions.CustomResource(
                f"{name}-cluster-rules", api_version=cluster["apiVersion"], kind=cluster["kind"],
                metadata=cluster["metadata"], spec=cluster["spec"], opts=child,
            )
        k8s.core.v1.Secret(
            f"{name}-alertmanager",
            routing.alertmanager_secret_args(alertmanager_yaml(args), instance=name),
            opts=child,
        )
        panels = dashboard.panels(args.metrics, kube_state_metrics=args.kube_state_metrics)
        gcp.monitoring.Dashboard(
            f"{name}-dashboard",
            dashboard_json=dashboard.render_json(dashboard.cloud_monitoring_dashboard(
                panels, title=f"{dashboard.TITLE} ({args.namespace})")),
            project=args.project,
            opts=child,
        )

    def _scrape_ca(self, name: str, namespace: str, tls: scrape.ScrapeTls,
                   ca_certificate: pulumi.Input[str], child: pulumi.ResourceOptions) -> None:
        """The CA certificate as a Secret, readable by GMP's collectors and by nothing new: the
        Role names that one Secret, so the collectors read no other Secret here (the servers'
        keys stay in theirs)."""
        labels = names.labels("scrape-ca", name, component="monitoring")
        k8s.core.v1.Secret(
            f"{name}-scrape-ca",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=tls.ca_secret, namespace=namespace,
                                                labels=labels),
            type="Opaque",
            string_data={tls.ca_key: ca_certificate},
            opts=child,
        )
        role, binding = scrape.gmp_secret_reader(tls.ca_secret, namespace)
        k8s.rbac.v1.Role(f"{name}-scrape-ca-reader",
                         metadata={**role["metadata"], "labels": labels},
                         rules=role["rules"], opts=child)
        k8s.rbac.v1.RoleBinding(f"{name}-scrape-ca-reader",
                                metadata={**binding["metadata"], "labels": labels},
                                role_ref=binding["roleRef"], subjects=binding["subjects"],
                                opts=child)

    def _local(self, name: str, args: ObservabilityArgs, child: pulumi.ResourceOptions) -> None:
        labels = names.labels("observability", name, component="monitoring")
        k8s.core.v1.ConfigMap(
            f"{name}-prometheus",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{name}-prometheus",
                                                namespace=args.namespace, labels=labels),
            data=local_prometheus_files(args),
            opts=child,
        )
        k8s.core.v1.Secret(
            f"{name}-alertmanager",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{name}-alertmanager",
                                                namespace=args.namespace, labels=labels),
            type="Opaque",
            string_data={routing.ALERTMANAGER_SECRET_KEY: alertmanager_yaml(args)},
            opts=child,
        )
        panels = dashboard.panels(args.metrics, kube_state_metrics=args.kube_state_metrics)
        k8s.core.v1.ConfigMap(
            f"{name}-grafana-dashboard",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=f"{name}-grafana-dashboard", namespace=args.namespace,
                labels={**labels, **GRAFANA_DASHBOARD_LABEL},
            ),
            data={"ha-celery.json": dashboard.render_json(dashboard.grafana_dashboard(panels))},
            opts=child,
        )
