"""Scrape targets: one description per metrics source, rendered for GMP and for any Prometheus.

Owns ``ScrapeTarget`` (job, namespace, pod selector, port, path, parameters, interval, and
``ScrapeTls`` for an endpoint served over HTTPS: the scraper verifies it against the stack's CA
under a name its certificate lists), the
factories that describe each source of the platform (two RabbitMQ jobs, Flower, the web app,
the PostgreSQL and backup exporter sidecars, KEDA's operator), and three renderings of the same
description:

- ``pod_monitoring_body``: a GMP ``PodMonitoring`` (GKE stacks; the job label is its name);
- ``kubernetes_scrape_config``: a Prometheus ``scrape_configs`` entry with Kubernetes pod
  discovery and the same job/instance/namespace labels GMP produces (the ``local`` stack, for
  any Prometheus the user runs);
- ``static_scrape_config``: the same with fixed addresses (the drill on 127.0.0.1).
Plus ``prometheus_config`` (a whole prometheus.yml around them), ``gmp_secret_reader`` (the
Role and RoleBinding that let GMP's collectors read the CA Secret an HTTPS target names), and
``scraper_ingress_rule``,
the NetworkPolicy rule a scraped pod needs: GMP's collectors, and nothing else, may reach its
metrics port.

Does not create objects (``component``) or decide pod labels: callers pass each workload's
selector, so a renamed component cannot silently lose its scraping.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

import pulumi_kubernetes as k8s

from infra import names
from infra.observability import sources
from infra.observability.alerts import format_duration
from infra.observability.routing import GMP_API_VERSION, ObjectMeta
from infra.observability.sources import Jobs, RabbitMQMetrics
from infra.validation import check

GMP_COLLECTOR_NAMESPACE = "gmp-system"
GMP_COLLECTOR_SELECTOR = {"app.kubernetes.io/name": "collector"}
"""GKE's managed collectors (a DaemonSet named ``collector`` in ``gmp-system``, upstream
prometheus-engine's ``NameCollector``): the only pods that scrape on GKE."""
GMP_COLLECTOR_SERVICE_ACCOUNT = "collector"
"""The collectors' ServiceAccount in ``gmp-system`` (GKE Standard): it reads the Secrets a
PodMonitoring's ``tls`` names, once a RoleBinding lets it (GKE's "secret" RBAC recipe)."""

SCRAPE_CA_SECRET = "scrape-ca"
"""The Secret holding only the stack's CA certificate, for GMP (its ``tls.ca`` reads Secrets
only; the ``trust-bundle`` ConfigMap holds the same certificate). Never a server's key."""
SCRAPE_CA_KEY = "ca.crt"
LOCAL_PROMETHEUS_CA_FILE = "/etc/prometheus/ha-celery-ca/ca.crt"
"""``local``: where the user's Prometheus mounts the stack's CA (a copy of the ``trust-bundle``
ConfigMap in its namespace, README "Monitoring and alerts")."""

_DNS_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_DNS_NAME = re.compile(r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
                       r"(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$")
_PORT_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,13}[a-z0-9])?$")
_LABEL_KEY = re.compile(r"^([a-z0-9.-]{1,253}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


@dataclass(frozen=True, kw_only=True)
class ScrapeTls:
    """Scrape over HTTPS and verify the server: its certificate must chain to the stack's CA and
    list ``server_name`` (pods are scraped by IP, which no certificate names)."""

    server_name: str
    """A DNS name in the server's certificate (e.g. its client Service's name)."""
    ca_secret: str = SCRAPE_CA_SECRET
    """GKE: the Secret (in the target's namespace) holding the CA certificate."""
    ca_key: str = SCRAPE_CA_KEY
    ca_file: str = LOCAL_PROMETHEUS_CA_FILE
    """Any Prometheus: the CA certificate's path in its container."""

    def __post_init__(self) -> None:
        check(isinstance(self.server_name, str) and bool(_DNS_NAME.match(self.server_name)),
              "ScrapeTls.server_name", self.server_name,
              "a DNS name listed in the server's certificate (not an IP address)")
        check(isinstance(self.ca_secret, str) and bool(_DNS_NAME.match(self.ca_secret)),
              "ScrapeTls.ca_secret", self.ca_secret, "a Secret name")
        check(isinstance(self.ca_key, str) and bool(self.ca_key), "ScrapeTls.ca_key",
              self.ca_key, "a key of that Secret")
        check(isinstance(self.ca_file, str) and self.ca_file.startswith("/"),
              "ScrapeTls.ca_file", self.ca_file, "an absolute path")


@dataclass(frozen=True, kw_only=True)
class ScrapeTarget:
    """One metrics endpoint of a set of pods."""

    job: str
    """The ``job`` label; on GKE also the PodMonitoring's name."""
    namespace: str
    selector: Mapping[str, str]
    """Pod labels to match (the workload's selector labels)."""
    port: str | int
    """The container port's name (preferred: survives a port change) or number."""
    path: str = "/metrics"
    params: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    interval_seconds: int = 30
    """GMP's own default; RabbitMQ's docs advise against scraping more often than every 15 s."""
    timeout_seconds: int | None = None
    """None: 80 % of the interval (rounded up), so a slow scrape never overlaps the next one."""
    tls: ScrapeTls | None = None
    """None: plain http (a listener the workload keeps off the pod network otherwise)."""

    def __post_init__(self) -> None:
        owner = f"ScrapeTarget[{self.job!r}]"
        check(
            isinstance(self.job, str) and bool(_DNS_LABEL.match(self.job)),
            "ScrapeTarget.job",
            self.job,
            "a DNS label (it names the PodMonitoring)",
        )
        check(
            isinstance(self.namespace, str) and bool(_DNS_LABEL.match(self.namespace)),
            f"{owner}.namespace",
            self.namespace,
            "a namespace name",
        )
        check(
            bool(self.selector)
            and all(_LABEL_KEY.match(k) and isinstance(v, str) for k, v in self.selector.items()),
            f"{owner}.selector",
            dict(self.selector),
            "at least one pod label key: value (an empty selector would scrape every pod)",
        )
        port_ok = (
            isinstance(self.port, int) and not isinstance(self.port, bool)
            and 1 <= self.port <= 65535
        ) or (isinstance(self.port, str) and bool(_PORT_NAME.match(self.port)))
        check(port_ok, f"{owner}.port", self.port,
              "a container port name (lowercase, at most 15 characters) or number 1..65535")
        check(
            isinstance(self.path, str) and self.path.startswith("/") and "?" not in self.path,
            f"{owner}.path",
            self.path,
            "an absolute path without a query (put query parameters in params)",
        )
        check(
            isinstance(self.interval_seconds, int) and 1 <= self.interval_seconds <= 3600,
            f"{owner}.interval_seconds",
            self.interval_seconds,
            "1..3600 seconds",
        )
        check(
            self.timeout_seconds is None
            or (isinstance(self.timeout_seconds, int)
                and 1 <= self.timeout_seconds <= self.interval_seconds),
            f"{owner}.timeout_seconds",
            self.timeout_seconds,
            f"None or 1..interval_seconds ({self.interval_seconds})",
        )
        check(self.tls is None or isinstance(self.tls, ScrapeTls), f"{owner}.tls", self.tls,
              "None or a ScrapeTls")

    @property
    def scheme(self) -> str:
        return "http" if self.tls is None else "https"

    @property
    def timeout(self) -> str:
        seconds = self.timeout_seconds or max(1, math.ceil(self.interval_seconds * 0.8))
        return format_duration(seconds)

    @property
    def interval(self) -> str:
        return format_duration(self.interval_seconds)


# ------------------------------------------------------------------------------ factories


def rabbitmq_targets(
    *,
    namespace: str,
    selector: Mapping[str, str],
    rabbitmq: RabbitMQMetrics,
    jobs: Jobs | None = None,
    interval_seconds: int = 30,
    tls: ScrapeTls | None = None,
) -> tuple[ScrapeTarget, ScrapeTarget]:
    """Every broker node, twice: aggregated ``/metrics`` and the per-queue families.

    Two jobs because GMP names a target ``<pod>:<port>``: two endpoints on one port in one
    PodMonitoring would collide. ``tls``: the nodes serve metrics over HTTPS (the port named
    ``prometheus`` is then 15691), as they do whenever the broker runs TLS.
    """
    jobs = jobs or Jobs()
    port = sources.RABBITMQ_METRICS_PORT_NAME
    params = {key: tuple(values) for key, values in rabbitmq.detailed_params().items()}
    return (
        ScrapeTarget(job=jobs.rabbitmq, namespace=namespace, selector=selector, port=port,
                     interval_seconds=interval_seconds, tls=tls),
        ScrapeTarget(job=jobs.rabbitmq_queues, namespace=namespace, selector=selector, port=port,
                     path="/metrics/detailed", params=params, interval_seconds=interval_seconds,
                     tls=tls),
    )


def _target(job: str, port: str, namespace: str, selector: Mapping[str, str],
            interval_seconds: int) -> ScrapeTarget:
    return ScrapeTarget(job=job, namespace=namespace, selector=selector, port=port,
                        interval_seconds=interval_seconds)


def flower_target(*, namespace: str, selector: Mapping[str, str], jobs: Jobs | None = None,
                  interval_seconds: int = 30) -> ScrapeTarget:
    """Flower's ``/metrics`` on its UI port."""
    return _target((jobs or Jobs()).flower, sources.FLOWER_METRICS_PORT_NAME, namespace,
                   selector, interval_seconds)


def web_target(*, namespace: str, selector: Mapping[str, str], jobs: Jobs | None = None,
               interval_seconds: int = 30) -> ScrapeTarget:
    """The web pods' separate metrics listener (``app/metrics.py``)."""
    return _target((jobs or Jobs()).web, sources.METRICS_PORT_NAME, namespace, selector,
                   interval_seconds)


def postgres_target(*, namespace: str, selector: Mapping[str, str], jobs: Jobs | None = None,
                    interval_seconds: int = 30) -> ScrapeTarget:
    """The postgres_exporter sidecar of the database pod."""
    return _target((jobs or Jobs()).postgres, sources.METRICS_PORT_NAME, namespace, selector,
                   interval_seconds)


def backup_target(*, namespace: str, selector: Mapping[str, str], jobs: Jobs | None = None,
                  interval_seconds: int = 30) -> ScrapeTarget:
    """The backup-metrics sidecar of the pghoard pod (``pghoard/backup_metrics.py``)."""
    return _target((jobs or Jobs()).backup, sources.METRICS_PORT_NAME, namespace, selector,
                   interval_seconds)


def keda_target(*, namespace: str = "keda", jobs: Jobs | None = None,
                interval_seconds: int = 30) -> ScrapeTarget:
    """KEDA's operator (its chart's labels and port name)."""
    return _target((jobs or Jobs()).keda, sources.KEDA_OPERATOR_METRICS_PORT_NAME, namespace,
                   dict(sources.KEDA_OPERATOR_SELECTOR), interval_seconds)


# ------------------------------------------------------------------------------- GMP


class PodMonitoringEndpoint(TypedDict, total=False):
    port: str | int
    path: str
    params: dict[str, list[str]]
    interval: str
    timeout: str
    scheme: str
    tls: dict[str, Any]


class PodMonitoringSpec(TypedDict):
    selector: dict[str, dict[str, str]]
    endpoints: list[PodMonitoringEndpoint]


class PodMonitoringBody(TypedDict):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: PodMonitoringSpec


def pod_monitoring_body(target: ScrapeTarget) -> PodMonitoringBody:
    """A GMP ``PodMonitoring`` that scrapes ``target`` (its name becomes the job label)."""
    endpoint: PodMonitoringEndpoint = {
        "port": target.port,
        "path": target.path,
        "interval": target.interval,
        "timeout": target.timeout,
    }
    if target.params:
        endpoint["params"] = {key: list(values) for key, values in target.params.items()}
    if target.tls is not None:
        # GMP reads the CA from a Secret in the PodMonitoring's namespace, with the collectors'
        # own ServiceAccount (``gmp_secret_reader_bodies`` grants it that one Secret).
        endpoint["scheme"] = "https"
        endpoint["tls"] = {
            "ca": {"secret": {"name": target.tls.ca_secret, "key": target.tls.ca_key}},
            "serverName": target.tls.server_name,
        }
    return {
        "apiVersion": GMP_API_VERSION,
        "kind": "PodMonitoring",
        "metadata": {
            "name": target.job,
            "namespace": target.namespace,
            "labels": names.labels("pod-monitoring", target.job, component="monitoring"),
        },
        "spec": {"selector": {"matchLabels": dict(target.selector)}, "endpoints": [endpoint]},
    }


def gmp_secret_reader(secret: str, namespace: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A Role that may read one Secret and its RoleBinding to GMP's collectors (GKE Standard's
    ``collector`` in ``gmp-system``), as GKE documents for PodMonitoring credentials: ``get``,
    ``list`` and ``watch`` limited to ``resourceNames``, the binding named
    ``gmp-system:collector:<role>``."""
    role = f"{secret}-reader"
    return (
        {"metadata": {"name": role, "namespace": namespace},
         "rules": [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": [secret],
                    "verbs": ["get", "list", "watch"]}]},
        {"metadata": {"name": f"{GMP_COLLECTOR_NAMESPACE}:{GMP_COLLECTOR_SERVICE_ACCOUNT}:{role}",
                      "namespace": namespace},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
         "subjects": [{"kind": "ServiceAccount", "name": GMP_COLLECTOR_SERVICE_ACCOUNT,
                       "namespace": GMP_COLLECTOR_NAMESPACE}]},
    )


# ------------------------------------------------------------------------ any Prometheus


def _common_scrape(target: ScrapeTarget) -> dict[str, Any]:
    config: dict[str, Any] = {
        "job_name": target.job,
        "metrics_path": target.path,
        "scrape_interval": target.interval,
        "scrape_timeout": target.timeout,
    }
    if target.params:
        config["params"] = {key: list(values) for key, values in target.params.items()}
    if target.tls is not None:
        config["scheme"] = "https"
        config["tls_config"] = {"ca_file": target.tls.ca_file,
                                "server_name": target.tls.server_name}
    return config


def _meta_label(key: str) -> str:
    return "__meta_kubernetes_pod_label_" + re.sub(r"[^A-Za-z0-9_]", "_", key)


def kubernetes_scrape_config(target: ScrapeTarget) -> dict[str, Any]:
    """A scrape config with pod discovery that yields GMP's labels: ``job``, ``namespace`` and
    ``instance`` = ``<pod>:<port>``, so the same rules and dashboards work unchanged."""
    keep = [
        {"action": "keep", "source_labels": [_meta_label(key)], "regex": re.escape(value)}
        for key, value in sorted(target.selector.items())
    ]
    port_label = (
        "__meta_kubernetes_pod_container_port_name"
        if isinstance(target.port, str)
        else "__meta_kubernetes_pod_container_port_number"
    )
    relabel = [
        *keep,
        {"action": "keep", "source_labels": [port_label], "regex": str(target.port)},
        {"action": "drop", "source_labels": ["__meta_kubernetes_pod_phase"],
         "regex": "(Failed|Succeeded)"},
        {"action": "replace", "source_labels": ["__meta_kubernetes_namespace"],
         "target_label": "namespace"},
        {"action": "replace", "source_labels": ["__meta_kubernetes_pod_name", port_label],
         "separator": ":", "target_label": "instance"},
    ]
    return {
        **_common_scrape(target),
        "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [target.namespace]}}],
        "relabel_configs": relabel,
    }


def static_scrape_config(target: ScrapeTarget, addresses: Sequence[str]) -> dict[str, Any]:
    """The same job on fixed ``host:port`` addresses (the drill); ``namespace`` as GMP sets it."""
    check(bool(addresses), f"static_scrape_config[{target.job!r}].addresses", addresses,
          "at least one host:port")
    return {
        **_common_scrape(target),
        "static_configs": [{"targets": list(addresses), "labels": {"namespace": target.namespace}}],
    }


def prometheus_config(
    scrape_configs: Sequence[Mapping[str, Any]],
    *,
    rule_files: Sequence[str] = (),
    alertmanagers: Sequence[str] = (),
    scrape_interval_seconds: int = 30,
    evaluation_interval_seconds: int = 30,
) -> dict[str, Any]:
    """A whole prometheus.yml: these jobs, these rule files, these Alertmanagers."""
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": format_duration(scrape_interval_seconds),
            "evaluation_interval": format_duration(evaluation_interval_seconds),
        },
        "rule_files": list(rule_files),
        "scrape_configs": [dict(entry) for entry in scrape_configs],
    }
    if alertmanagers:
        config["alerting"] = {
            "alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]
        }
    return config


# ------------------------------------------------------------------------- NetworkPolicy


def scraper_ingress_rule(
    port: str | int,
    *,
    scraper_namespace: str = GMP_COLLECTOR_NAMESPACE,
    scraper_selector: Mapping[str, str] | None = None,
) -> k8s.networking.v1.NetworkPolicyIngressRuleArgs:
    """Admit the metrics scraper (GKE's managed collectors by default) on ``port`` only.

    The ``local`` stack passes its own Prometheus' namespace and pod labels instead.
    """
    selector = dict(GMP_COLLECTOR_SELECTOR if scraper_selector is None else scraper_selector)
    check(bool(_DNS_LABEL.match(scraper_namespace)), "scraper_ingress_rule.scraper_namespace",
          scraper_namespace, "a namespace name")
    check(bool(selector), "scraper_ingress_rule.scraper_selector", selector,
          "the scraper's pod labels (an empty selector admits every pod of the namespace)")
    return k8s.networking.v1.NetworkPolicyIngressRuleArgs(
        from_=[
            k8s.networking.v1.NetworkPolicyPeerArgs(
                namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                    match_labels={"kubernetes.io/metadata.name": scraper_namespace}
                ),
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
            )
        ],
        ports=[k8s.networking.v1.NetworkPolicyPortArgs(port=port, protocol="TCP")],
    )
