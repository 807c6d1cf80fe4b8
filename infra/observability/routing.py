"""Where alerts go: Alertmanager's configuration, and the GMP objects that carry rules and it.

The choice (GKE stacks): Managed Service for Prometheus' managed rule evaluation, fed by GMP
``Rules`` (namespace-scoped) and ``ClusterRules`` (KEDA's metrics live in another namespace), with
the managed Alertmanager configured from the ``alertmanager`` Secret in ``gmp-public``. Not Cloud
Monitoring alert policies with PromQL conditions, because:

- the very files the drill proves are the files deployed: a GMP ``Rules.spec.groups`` is a
  Prometheus rule group and the managed Alertmanager reads an ``alertmanager.yaml``, so
  ``promtool``, ``amtool`` and a real Prometheus + Alertmanager exercise them here, and the
  ``local`` stack runs them on any Prometheus unchanged;
- Alertmanager groups (one notification per alert, not per pod) and inhibits (a dead broker node
  suppresses the partition and quorum alerts it causes), which alert policies cannot express;
- no per-condition pricing or one cloud resource per alert to keep in sync.
The cost: e-mail needs an SMTP relay (Cloud Monitoring mails natively); webhook receivers
(chat, paging services) need none.

Owns ``AlertRoutingArgs`` (receivers from a list of e-mail addresses and webhook URLs, timing),
the pure ``alertmanager_config`` generator, the "alerts go nowhere" marker the plan prints when
no receiver is configured, and pure builders for the GMP ``Rules``/``ClusterRules`` bodies and the
Alertmanager Secret. Does not own the rules themselves (``alerts``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict
from urllib.parse import urlsplit

import pulumi
import pulumi_kubernetes as k8s
import yaml

from infra import names
from infra.observability.alerts import format_duration
from infra.validation import check

GMP_API_VERSION = "monitoring.googleapis.com/v1"
GMP_PUBLIC_NAMESPACE = "gmp-public"
"""Where the managed Alertmanager reads its configuration (upstream DefaultPublicNamespace)."""
ALERTMANAGER_SECRET_NAME = "alertmanager"
ALERTMANAGER_SECRET_KEY = "alertmanager.yaml"
"""The managed Alertmanager's default configSecret (OperatorConfig's kubebuilder default)."""

RECEIVER = "platform"
NOWHERE = "nowhere"
"""Receiver name when no address is configured: Alertmanager accepts and drops the alerts."""

GROUP_BY = ("alertname", "namespace")
"""One notification per alert and platform, listing every instance (not one mail per pod)."""

INHIBITIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # A dead node leaves its peers short of links and quorum queues short of members: those
    # alerts say the same thing again while the node is down.
    ("RabbitMQNodeDown", ("RabbitMQClusterPartitioned", "RabbitMQQuorumQueueBelowMajority")),
    # A stopped database writes no WAL; the archiving alert would only repeat PostgresDown.
    ("PostgresDown", ("BackupWalArchivingStalled",)),
)

_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$")
_HOST_PORT = re.compile(r"^[A-Za-z0-9.-]+:[0-9]{1,5}$")
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True, kw_only=True)
class SmtpSettings:
    """The mail relay Alertmanager sends e-mail through (required when e-mail is configured)."""

    smarthost: str
    """``host:port``, e.g. ``smtp.sendgrid.net:587``."""
    sender: str
    """The From address."""
    username: str | None = None
    password: pulumi.Input[str] | None = None
    """A secret: it ends up only in the Alertmanager Secret."""
    require_tls: bool = True
    """STARTTLS required: alert mail names hosts and queues, which the network need not see."""

    def __post_init__(self) -> None:
        check(
            isinstance(self.smarthost, str) and bool(_HOST_PORT.match(self.smarthost)),
            "SmtpSettings.smarthost",
            self.smarthost,
            "host:port of the mail relay, e.g. 'smtp.example.com:587'",
        )
        check(
            isinstance(self.sender, str) and bool(_EMAIL.match(self.sender)),
            "SmtpSettings.sender",
            self.sender,
            "an e-mail address for the From header",
        )
        check(
            (self.username is None) == (self.password is None),
            "SmtpSettings.username",
            self.username,
            "a username together with a password, or neither",
        )


@dataclass(frozen=True, kw_only=True)
class AlertRoutingArgs:
    """Who hears about alerts, and how often. Everything has a default; none means nobody."""

    emails: tuple[str, ...] = ()
    webhook_urls: tuple[pulumi.Input[str], ...] = ()
    """Each receives Alertmanager's webhook JSON (chat bridges, paging services). Plain strings
    are checked; an Output (a secret URL from stack config) is trusted."""
    smtp: SmtpSettings | None = None
    group_wait_seconds: int = 30
    """How long a new group waits for more alerts before its first notification."""
    group_interval_seconds: int = 300
    """How long before a group that changed (a new alert, a resolved one) notifies again."""
    repeat_interval_seconds: int = 4 * 3600
    """How often a still-firing warning is repeated."""
    critical_repeat_interval_seconds: int = 3600
    """How often a still-firing critical alert is repeated."""

    def __post_init__(self) -> None:
        owner = "AlertRoutingArgs"
        check(
            isinstance(self.emails, tuple),
            f"{owner}.emails",
            self.emails,
            "a list of e-mail addresses",
        )
        for address in self.emails:
            check(
                isinstance(address, str) and bool(_EMAIL.match(address)),
                f"{owner}.emails",
                address,
                "an e-mail address such as 'oncall@example.com'",
            )
        check(
            len(set(self.emails)) == len(self.emails),
            f"{owner}.emails",
            self.emails,
            "each address once",
        )
        check(
            isinstance(self.webhook_urls, tuple),
            f"{owner}.webhook_urls",
            self.webhook_urls,
            "a list of URLs",
        )
        for url in self.webhook_urls:
            if isinstance(url, str):
                check(
                    _acceptable_webhook(url),
                    f"{owner}.webhook_urls",
                    _redacted(url),
                    "an https:// URL (http:// only to a cluster Service or the loopback)",
                )
        check(
            not self.emails or self.smtp is not None,
            f"{owner}.smtp",
            None,
            "SmtpSettings(smarthost=..., sender=...) when e-mail addresses are set: "
            "Alertmanager sends mail through a relay",
        )
        for name, low, high in (
            ("group_wait_seconds", 0, 3600),
            ("group_interval_seconds", 1, 86400),
            ("repeat_interval_seconds", 60, 7 * 86400),
            ("critical_repeat_interval_seconds", 60, 7 * 86400),
        ):
            value = getattr(self, name)
            check(
                isinstance(value, int) and not isinstance(value, bool) and low <= value <= high,
                f"{owner}.{name}",
                value,
                f"a whole number of seconds, {low}..{high}",
            )

    @property
    def goes_nowhere(self) -> bool:
        return not self.emails and not self.webhook_urls


def _acceptable_webhook(url: str) -> bool:
    parts = urlsplit(url)
    if not parts.hostname or parts.scheme not in ("https", "http"):
        return False
    if parts.scheme == "https":
        return True
    host = parts.hostname
    return host in _LOOPBACK_HOSTS or host.endswith((".svc", ".svc.cluster.local"))


def _redacted(url: str) -> str:
    """A webhook URL without its path and query (they often hold the token)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}/..." if parts.scheme else "<not a URL>"


def routing_summary(args: AlertRoutingArgs) -> str:
    """One line for the plan: where alerts go, or that they go nowhere."""
    if args.goes_nowhere:
        return (
            "alerts go nowhere: no e-mail address or webhook is configured; alerts fire and are "
            "visible in Prometheus/Alertmanager but nobody is notified"
        )
    targets = [*args.emails, *(f"webhook {i + 1}" for i in range(len(args.webhook_urls)))]
    return f"alerts go to {', '.join(targets)}"


def alertmanager_config(
    args: AlertRoutingArgs,
    *,
    webhook_urls: Sequence[str] | None = None,
    smtp_password: str | None = None,
) -> dict[str, Any]:
    """Alertmanager's configuration. Pure.

    ``webhook_urls`` and ``smtp_password`` are the resolved values when ``args`` holds Outputs
    (the component resolves them inside a secret); by default ``args``' own values are used.
    """
    urls = list(webhook_urls) if webhook_urls is not None else list(args.webhook_urls)
    password = smtp_password
    if password is None and args.smtp is not None and isinstance(args.smtp.password, str):
        password = args.smtp.password
    check(
        all(isinstance(url, str) for url in urls),
        "alertmanager_config.webhook_urls",
        "<Output>",
        "resolved strings (resolve Outputs with Output.all(...).apply first)",
    )
    config: dict[str, Any] = {"global": {"resolve_timeout": "5m"}}
    if args.smtp is not None:
        smtp: dict[str, Any] = {
            "smtp_smarthost": args.smtp.smarthost,
            "smtp_from": args.smtp.sender,
            "smtp_require_tls": args.smtp.require_tls,
        }
        if args.smtp.username is not None:
            smtp["smtp_auth_username"] = args.smtp.username
            smtp["smtp_auth_password"] = password
        config["global"].update(smtp)

    receiver = NOWHERE if args.goes_nowhere else RECEIVER
    route: dict[str, Any] = {
        "receiver": receiver,
        "group_by": list(GROUP_BY),
        "group_wait": format_duration(args.group_wait_seconds),
        "group_interval": format_duration(args.group_interval_seconds),
        "repeat_interval": format_duration(args.repeat_interval_seconds),
    }
    if not args.goes_nowhere:
        route["routes"] = [
            {
                "receiver": receiver,
                "matchers": ['severity="critical"'],
                "repeat_interval": format_duration(args.critical_repeat_interval_seconds),
            }
        ]
    definition: dict[str, Any] = {"name": receiver}
    if args.emails:
        definition["email_configs"] = [
            {"to": address, "send_resolved": True} for address in args.emails
        ]
    if urls:
        definition["webhook_configs"] = [
            {"url": url, "send_resolved": True, "max_alerts": 0} for url in urls
        ]
    config["route"] = route
    config["receivers"] = [definition]
    config["inhibit_rules"] = [
        {
            "source_matchers": [f'alertname="{source}"'],
            "target_matchers": [f'alertname=~"{"|".join(targets)}"'],
            "equal": ["namespace"],
        }
        for source, targets in INHIBITIONS
    ]
    return config


def render_alertmanager_yaml(config: Mapping[str, Any], args: AlertRoutingArgs) -> str:
    header = (
        "# Generated by infra/observability/routing.py; edit the stack's alerting settings.\n"
        f"# {routing_summary(args)}\n"
    )
    return header + yaml.safe_dump(dict(config), sort_keys=False, width=1_000_000)


# ------------------------------------------------------------------------ GMP objects


class ObjectMeta(TypedDict, total=False):
    name: str
    namespace: str
    labels: dict[str, str]


class RulesBody(TypedDict):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: dict[str, Any]


def _labels(instance: str) -> dict[str, str]:
    return names.labels("alert-rules", instance, component="monitoring")


def rules_body(name: str, namespace: str, groups: Mapping[str, Any]) -> RulesBody:
    """A GMP ``Rules`` object: its queries only see the metrics of ``namespace``."""
    return {
        "apiVersion": GMP_API_VERSION,
        "kind": "Rules",
        "metadata": {"name": name, "namespace": namespace, "labels": _labels(name)},
        "spec": {"groups": list(groups["groups"])},
    }


def cluster_rules_body(name: str, groups: Mapping[str, Any]) -> RulesBody:
    """A GMP ``ClusterRules`` object: its queries see every namespace (KEDA's included)."""
    return {
        "apiVersion": GMP_API_VERSION,
        "kind": "ClusterRules",
        "metadata": {"name": name, "labels": _labels(name)},
        "spec": {"groups": list(groups["groups"])},
    }


def alertmanager_secret_args(
    config_yaml: pulumi.Input[str], *, instance: str
) -> k8s.core.v1.SecretInitArgs:
    """The managed Alertmanager's configuration Secret (the YAML may hold webhook tokens and the
    SMTP password, so the whole file is a secret)."""
    return k8s.core.v1.SecretInitArgs(
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=ALERTMANAGER_SECRET_NAME,
            namespace=GMP_PUBLIC_NAMESPACE,
            labels=names.labels("alertmanager-config", instance, component="monitoring"),
        ),
        type="Opaque",
        string_data={ALERTMANAGER_SECRET_KEY: config_yaml},
    )
