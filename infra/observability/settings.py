"""What a stack may choose about its monitoring (``ha-celery:observability``).

Owns the user-facing choices, each validated with the field named: whether the platform is
watched at all, how often it is scraped and its rules evaluated, the alert thresholds
(``alerts.AlertThresholds``, nested as ``thresholds``), who is told (e-mail addresses and the mail
relay), how often, and, on the ``local`` stack, where the user's own Prometheus runs (its
namespace and pod labels are what the metrics ports' NetworkPolicy rules admit).

``routing`` turns the settings into ``routing.AlertRoutingArgs`` once the relay's password (a
secret, never a plain setting) is known; ``scraper`` names the pods allowed to scrape.

Does not build objects (``component`` does), does not read config (``stacks/config.py`` does) and
does not decide the thresholds' meaning (``alerts``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from infra.observability import routing
from infra.observability.alerts import AlertThresholds
from infra.observability.scrape import GMP_COLLECTOR_NAMESPACE, GMP_COLLECTOR_SELECTOR
from infra.validation import ArgsError, check

_DNS_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_LABEL_KEY = re.compile(r"^([a-z0-9.-]{1,253}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")

LOCAL_PROMETHEUS_NAMESPACE = "monitoring"
LOCAL_PROMETHEUS_LABELS = {"app.kubernetes.io/name": "prometheus"}
"""The Prometheus pods of kube-prometheus-stack (and of the Prometheus operator in general),
installed in its customary namespace: what a kind or minikube cluster most often runs."""


@dataclass(frozen=True, kw_only=True)
class SmtpRelay:
    """The mail relay alert e-mail goes through. Its password is a secret of its own
    (``ha-celery:alertSmtpPassword``), required when ``username`` is set."""

    smarthost: str
    """``host:port``, e.g. ``smtp.sendgrid.net:587``."""
    sender: str
    """The From address."""
    username: str | None = None
    require_tls: bool = True
    """STARTTLS required: alert mail names hosts and queues, which the network need not see."""

    def __post_init__(self) -> None:
        # The same rules as the Alertmanager configuration's (one place), password aside.
        routing.SmtpSettings(smarthost=self.smarthost, sender=self.sender,
                             username=None, password=None, require_tls=self.require_tls)
        check(self.username is None or (isinstance(self.username, str) and bool(self.username)),
              "SmtpRelay.username", self.username, "the relay's login name, or leave it out")


@dataclass(frozen=True, kw_only=True)
class ObservabilitySettings:
    """``ha-celery:observability``. Everything has a default; with no e-mail address set the
    alerts are evaluated but go nowhere (the plan says so)."""

    enabled: bool = True
    """False: no scrape targets, rules, dashboard or exporter sidecars at all."""
    scrape_interval_seconds: int = 30
    """GMP's own default; RabbitMQ advises against scraping its nodes more often than 15 s."""
    evaluation_interval_seconds: int = 30
    """How often the rules run (GMP's default is 60 s; 30 s halves detection time)."""
    thresholds: AlertThresholds = field(default_factory=AlertThresholds)
    """What counts as a problem. The backup ages default to the backup's own limits
    (``ha-celery:backup``), so the alert and the backup pod's readiness agree."""
    emails: tuple[str, ...] = ()
    """Who gets alert mail (needs ``smtp``)."""
    smtp: SmtpRelay | None = None
    group_wait_seconds: int = routing.AlertRoutingArgs.group_wait_seconds
    group_interval_seconds: int = routing.AlertRoutingArgs.group_interval_seconds
    repeat_interval_seconds: int = routing.AlertRoutingArgs.repeat_interval_seconds
    critical_repeat_interval_seconds: int = (
        routing.AlertRoutingArgs.critical_repeat_interval_seconds)
    prometheus_namespace: str = LOCAL_PROMETHEUS_NAMESPACE
    """``local`` only: the namespace of the Prometheus that scrapes the platform."""
    prometheus_pod_labels: Mapping[str, str] = field(
        default_factory=lambda: dict(LOCAL_PROMETHEUS_LABELS))
    """``local`` only: its pods' labels. Only these pods may reach the metrics ports."""

    def __post_init__(self) -> None:
        owner = "ObservabilitySettings"
        check(isinstance(self.enabled, bool), f"{owner}.enabled", self.enabled, "true or false")
        for name in ("scrape_interval_seconds", "evaluation_interval_seconds"):
            value = getattr(self, name)
            check(isinstance(value, int) and not isinstance(value, bool) and 5 <= value <= 300,
                  f"{owner}.{name}", value, "a whole number of seconds, 5..300")
        check(isinstance(self.thresholds, AlertThresholds), f"{owner}.thresholds",
              self.thresholds, "a mapping of alert thresholds")
        check(self.smtp is None or isinstance(self.smtp, SmtpRelay), f"{owner}.smtp", self.smtp,
              "a mapping with smarthost and sender")
        check(isinstance(self.prometheus_namespace, str)
              and bool(_DNS_LABEL.match(self.prometheus_namespace)),
              f"{owner}.prometheus_namespace", self.prometheus_namespace, "a namespace name")
        labels = self.prometheus_pod_labels
        check(isinstance(labels, Mapping) and bool(labels)
              and all(isinstance(k, str) and _LABEL_KEY.match(k) and isinstance(v, str)
                      and _LABEL_VALUE.match(v) for k, v in labels.items()),
              f"{owner}.prometheus_pod_labels", labels,
              "at least one pod label (key: value): an empty selector would admit every pod "
              "of the namespace")
        check(not self.emails or self.smtp is not None, f"{owner}.smtp", None,
              "the mail relay ({smarthost: 'host:port', sender: address}) when emails are set: "
              "Alertmanager sends mail through a relay")
        # The receivers and timing follow Alertmanager's rules (checked there, once).
        self.routing(smtp_password="checked-later" if self.smtp and self.smtp.username else None)

    def routing(self, *, smtp_password: Any = None,
                webhook_urls: tuple[Any, ...] = ()) -> routing.AlertRoutingArgs:
        """The Alertmanager routing, with the relay's password (a secret Output) put in."""
        smtp = None
        if self.smtp is not None:
            smtp = routing.SmtpSettings(
                smarthost=self.smtp.smarthost, sender=self.smtp.sender,
                username=self.smtp.username if smtp_password is not None else None,
                password=smtp_password if self.smtp.username else None,
                require_tls=self.smtp.require_tls)
        return _renamed(lambda: routing.AlertRoutingArgs(
            emails=tuple(self.emails), webhook_urls=webhook_urls, smtp=smtp,
            group_wait_seconds=self.group_wait_seconds,
            group_interval_seconds=self.group_interval_seconds,
            repeat_interval_seconds=self.repeat_interval_seconds,
            critical_repeat_interval_seconds=self.critical_repeat_interval_seconds))

    def scraper(self, platform: str) -> tuple[str, dict[str, str]]:
        """(namespace, pod labels) of the pods that scrape: GKE's managed collectors on GCP,
        the user's Prometheus on ``local``."""
        if platform == "gcp":
            return GMP_COLLECTOR_NAMESPACE, dict(GMP_COLLECTOR_SELECTOR)
        return self.prometheus_namespace, dict(self.prometheus_pod_labels)


def _renamed(build: Any) -> Any:
    """AlertRoutingArgs' errors under this class's name, so they map to the stack file's keys
    (``AlertRoutingArgs.emails`` is ``ha-celery:observability.emails``)."""
    try:
        return build()
    except ArgsError as error:
        raise ArgsError(error.field.replace("AlertRoutingArgs.", "ObservabilitySettings.", 1),
                        error.value, error.allowed) from None
