"""The web app (Flask under gunicorn) behind the platform's domain.

Owns the web Deployment (a `migrate` initContainer, then gunicorn; readiness on /readyz, which
reflects the pod only, liveness on /healthz, which only checks the process), its ClusterIP
Service, a PodDisruptionBudget and a NetworkPolicy (port 8000 from the load balancer only). On
GCP stacks it also owns the public entry: a GCE Ingress bound by name to the global static IP, a
Google-managed certificate for the domain, a FrontendConfig (HTTP-to-HTTPS redirect, the SSL
policy) and a BackendConfig (health check, connection draining, IAP, the Cloud Armor policy,
HSTS), plus the custom OAuth client's Secret when one is configured.

Does not own the global IP or the DNS records (the DNS component does; this takes the address
NAME), the Cloud Armor and SSL policies or IAP access (``infra/edge.py``; this takes their
names), nor the Secrets it references. On `local` there is no Ingress: port-forward the Service.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from app.metrics import DEFAULT_METRICS_PORT, METRICS_PORT_ENV
from infra import names
from infra.app_pod import (
    AppRuntimeArgs,
    ContainerResources,
    app_container,
    app_pod_spec,
    migrate_container,
    object_meta,
    pod_template_metadata,
    validate_object_name,
    workload_timeouts,
)
from infra.app_policies import network_policy_args, pod_disruption_budget_args, runtime_egress
from infra.edge import EdgeBackend
from infra.network_policy import (
    GOOGLE_LOAD_BALANCER_RANGES,
    ExternalEgress,
    MetricsScraper,
    Peer,
    tcp,
)
from infra.resource_options import child_options
from infra.validation import check

WEB_APP_NAME = "web"
HTTP_PORT = 8000
METRICS_PORT = DEFAULT_METRICS_PORT
METRICS_PORT_NAME = "metrics"
"""The name scrape targets use (infra/observability/sources.py METRICS_PORT_NAME)."""
SERVICE_PORT = 80
READINESS_PATH = "/readyz"
LIVENESS_PATH = "/healthz"

INGRESS_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
STATIC_IP_ANNOTATION = "kubernetes.io/ingress.global-static-ip-name"
MANAGED_CERTIFICATES_ANNOTATION = "networking.gke.io/managed-certificates"
FRONTEND_CONFIG_ANNOTATION = "networking.gke.io/v1beta1.FrontendConfig"
BACKEND_CONFIG_ANNOTATION = "cloud.google.com/backend-config"
NEG_ANNOTATION = "cloud.google.com/neg"

_DOMAIN = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


@dataclass(frozen=True, kw_only=True)
class WebIngressArgs:
    """The public entry on GCP: domain and the NAME of the global static address."""

    domain: str
    """The users' host name; the managed certificate is issued for it."""
    global_address_name: pulumi.Input[str]
    """Name (not IP) of the `gcp.compute.GlobalAddress` the DNS A record points at."""
    connection_draining_seconds: int = 30
    """Load balancer keeps in-flight requests of a leaving pod this long."""
    edge: EdgeBackend | None = None
    """Cloud Armor policy, SSL policy, IAP and response headers from ``infra/edge.py`` (wired
    by the platform). None: the load balancer's defaults (only for tests of this module)."""

    def __post_init__(self) -> None:
        check(
            isinstance(self.domain, str) and bool(_DOMAIN.match(self.domain)),
            "WebIngressArgs.domain",
            self.domain,
            "a lowercase fully-qualified domain name, e.g. 'celery.example.com'",
        )
        if isinstance(self.global_address_name, str):
            check(
                bool(re.match(r"^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$", self.global_address_name)),
                "WebIngressArgs.global_address_name",
                self.global_address_name,
                "a GCP resource name (the address's name, not its IP)",
            )
        check(
            0 <= self.connection_draining_seconds <= 300,
            "WebIngressArgs.connection_draining_seconds",
            self.connection_draining_seconds,
            "seconds in 0..300",
        )


@dataclass(frozen=True, kw_only=True)
class WebAppArgs:
    """Inputs for WebApp. Only ``runtime`` is required; ``ingress`` only on GCP stacks."""

    runtime: AppRuntimeArgs
    replicas: int = 2
    """Two or more keep the site up through a node drain or a rollout."""
    resources: ContainerResources = field(
        default_factory=lambda: ContainerResources(
            cpu_request="100m", memory_request="192Mi", memory_limit="384Mi"
        )
    )
    migrate_resources: ContainerResources = field(default_factory=ContainerResources)
    ingress: WebIngressArgs | None = None
    """None (local stack): no Ingress, reach the ClusterIP Service by port-forward."""
    termination_grace_period_seconds: int = 45
    """Covers the preStop pause plus gunicorn's graceful worker shutdown."""
    allowed_egress: tuple[ExternalEgress, ...] = ()
    """Address blocks outside the cluster the web app may call (``[{cidr, ports}]``)."""
    metrics_scraper: MetricsScraper | None = None
    """Who scrapes the metrics listener (wired by the platform): the pods name its port and
    admit the scraper to it only. None: the listener runs, unreachable from other pods."""

    def __post_init__(self) -> None:
        check(
            1 <= self.replicas <= 50,
            "WebAppArgs.replicas",
            self.replicas,
            "1..50 (2 or more in production)",
        )
        check(
            15 <= self.termination_grace_period_seconds <= 600,
            "WebAppArgs.termination_grace_period_seconds",
            self.termination_grace_period_seconds,
            "seconds in 15..600",
        )


def web_labels(name: str) -> dict[str, str]:
    return names.labels(WEB_APP_NAME, name, component="web")


def web_selector(name: str) -> dict[str, str]:
    return names.selector_labels(WEB_APP_NAME, name)


def web_command() -> list[str]:
    """Exec form: gunicorn is PID 1 and gets SIGTERM (graceful worker shutdown)."""
    return ["gunicorn", "--config", "python:app.gunicorn_conf", "app.web:create_app()"]


def web_container(args: WebAppArgs) -> k8s.core.v1.ContainerArgs:
    http_probe = k8s.core.v1.HTTPGetActionArgs(path=LIVENESS_PATH, port="http")
    return app_container(
        name="web",
        runtime=args.runtime,
        command=web_command(),
        resources=args.resources,
        # Outside Kubernetes gunicorn listens on 127.0.0.1; here the Service must reach it, and
        # saying so does not rely on the kubelet's KUBERNETES_SERVICE_HOST or the image's env.
        extra_env={"PORT": str(HTTP_PORT), "WEB_HOST": "0.0.0.0",  # noqa: S104
                   METRICS_PORT_ENV: str(METRICS_PORT)},
        # The metrics listener (app/metrics.py, served by gunicorn's master) is its own port:
        # the Service and the Ingress only ever route to `http`.
        ports=[k8s.core.v1.ContainerPortArgs(name="http", container_port=HTTP_PORT),
               *([k8s.core.v1.ContainerPortArgs(name=METRICS_PORT_NAME,
                                                container_port=METRICS_PORT)]
                 if args.metrics_scraper is not None else [])],
        # /readyz reflects this pod only. It used to check the broker and the database too:
        # both are shared, so their outage took every web pod out of the Service and the load
        # balancer at once and the whole site answered 502, job list included (issue 14).
        # Dependency state is on /api/status, the page's banner and an alert instead.
        readiness_probe=k8s.core.v1.ProbeArgs(
            http_get=k8s.core.v1.HTTPGetActionArgs(path=READINESS_PATH, port="http"),
            period_seconds=10,
            timeout_seconds=5,
            failure_threshold=3,
        ),
        # /healthz checks only the process, so a broker outage never restarts the web tier.
        liveness_probe=k8s.core.v1.ProbeArgs(
            http_get=http_probe, period_seconds=20, timeout_seconds=5, failure_threshold=3
        ),
        startup_probe=k8s.core.v1.ProbeArgs(
            http_get=http_probe, period_seconds=5, timeout_seconds=5, failure_threshold=24
        ),
        lifecycle=k8s.core.v1.LifecycleArgs(
            # The load balancer drops a terminating pod a few seconds after Kubernetes does;
            # answering meanwhile avoids 502s on every rollout. (Native sleep: no shell needed.)
            pre_stop=k8s.core.v1.LifecycleHandlerArgs(sleep=k8s.core.v1.SleepActionArgs(seconds=10))
        ),
    )


def web_deployment_args(name: str, args: WebAppArgs) -> k8s.apps.v1.DeploymentInitArgs:
    """Pure: the web Deployment."""
    labels = web_labels(name)
    return k8s.apps.v1.DeploymentInitArgs(
        metadata=object_meta(name, args.runtime.namespace, labels),
        spec=k8s.apps.v1.DeploymentSpecArgs(
            replicas=args.replicas,
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels=web_selector(name)),
            strategy=k8s.apps.v1.DeploymentStrategyArgs(
                type="RollingUpdate",
                # Full capacity during a rollout: a new pod is ready before an old one leaves.
                rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(
                    max_surge=1, max_unavailable=0
                ),
            ),
            revision_history_limit=5,
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=pod_template_metadata(labels, args.runtime),
                spec=app_pod_spec(
                    runtime=args.runtime,
                    containers=[web_container(args)],
                    init_containers=[migrate_container(args.runtime, args.migrate_resources)],
                    termination_grace_period_seconds=args.termination_grace_period_seconds,
                    topology_spread_selector=web_selector(name),
                ),
            ),
        ),
    )


def backend_config_name(name: str) -> str:
    return f"{name}-backend"


def frontend_config_name(name: str) -> str:
    return f"{name}-frontend"


def certificate_name(name: str) -> str:
    return f"{name}-certificate"


def service_args(name: str, args: WebAppArgs) -> k8s.core.v1.ServiceInitArgs:
    """Pure: ClusterIP Service; on GCP annotated for container-native load balancing."""
    annotations = None
    if args.ingress is not None:
        annotations = {
            # NEGs: the load balancer sends straight to pod IPs and follows pod readiness.
            NEG_ANNOTATION: json.dumps({"ingress": True}),
            BACKEND_CONFIG_ANNOTATION: json.dumps({"default": backend_config_name(name)}),
        }
    return k8s.core.v1.ServiceInitArgs(
        metadata=object_meta(
            name, args.runtime.namespace, web_labels(name), annotations=annotations
        ),
        spec=k8s.core.v1.ServiceSpecArgs(
            type="ClusterIP",
            selector=web_selector(name),
            ports=[
                k8s.core.v1.ServicePortArgs(
                    name="http", port=SERVICE_PORT, target_port="http", protocol="TCP"
                )
            ],
        ),
    )


def ingress_args(name: str, args: WebAppArgs) -> k8s.networking.v1.IngressInitArgs:
    """Pure: the GCE Ingress on the global static IP, with the managed certificate."""
    ingress = args.ingress
    if ingress is None:
        raise ValueError(f"{name}: ingress_args needs WebAppArgs.ingress")
    annotations = {
        # GKE reads the class from this annotation and ignores spec.ingressClassName.
        INGRESS_CLASS_ANNOTATION: "gce",
        STATIC_IP_ANNOTATION: ingress.global_address_name,
        MANAGED_CERTIFICATES_ANNOTATION: certificate_name(name),
        FRONTEND_CONFIG_ANNOTATION: frontend_config_name(name),
    }
    return k8s.networking.v1.IngressInitArgs(
        metadata=object_meta(
            name, args.runtime.namespace, web_labels(name), annotations=annotations
        ),
        spec=k8s.networking.v1.IngressSpecArgs(
            rules=[
                k8s.networking.v1.IngressRuleArgs(
                    host=ingress.domain,
                    http=k8s.networking.v1.HTTPIngressRuleValueArgs(
                        paths=[
                            k8s.networking.v1.HTTPIngressPathArgs(
                                path="/",
                                path_type="Prefix",
                                backend=k8s.networking.v1.IngressBackendArgs(
                                    service=k8s.networking.v1.IngressServiceBackendArgs(
                                        name=name,
                                        port=k8s.networking.v1.ServiceBackendPortArgs(
                                            number=SERVICE_PORT
                                        ),
                                    )
                                ),
                            )
                        ]
                    ),
                )
            ],
        ),
    )


def managed_certificate_spec(ingress: WebIngressArgs) -> dict:
    return {"domains": [ingress.domain]}


def frontend_config_spec(ingress: WebIngressArgs | None = None) -> dict:
    # Plain HTTP only answers with a permanent redirect to HTTPS.
    spec: dict = {"redirectToHttps": {"enabled": True,
                                      "responseCodeName": "MOVED_PERMANENTLY_DEFAULT"}}
    if ingress is not None and ingress.edge is not None:
        # TLS >= 1.2 with the profile's ciphers (the load balancer's default accepts TLS 1.0).
        spec["sslPolicy"] = ingress.edge.ssl_policy
    return spec


def oauth_secret_name(name: str) -> str:
    return f"{name}-iap-oauth-client"


def edge_backend_spec(name: str, edge: EdgeBackend) -> dict:
    """The BackendConfig fields of the front door (ingress-gce pkg/apis/backendconfig/v1)."""
    iap: dict = {"enabled": edge.iap_enabled}
    if edge.iap_enabled and edge.oauth_client_id:
        # A custom OAuth client, by reference to the Secret (keys client_id, client_secret).
        iap["oauthclientCredentials"] = {"secretName": oauth_secret_name(name)}
    return {
        # Explicit `enabled: false` on a public stack: removing the block would leave IAP as
        # it was on the backend service.
        "iap": iap,
        "securityPolicy": {"name": edge.security_policy},
        # HSTS from the load balancer: it is added to every response the backend serves, also
        # when a gunicorn worker answers an error, and never on the port-forwarded local
        # stack, where the app speaks plain HTTP (browsers ignore HSTS over HTTP anyway).
        "customResponseHeaders": {"headers": list(edge.response_headers)},
    }


def backend_config_spec(ingress: WebIngressArgs, name: str = "web") -> dict:
    edge = edge_backend_spec(name, ingress.edge) if ingress.edge is not None else {}
    return {
        **edge,
        # Explicit, so the load balancer checks the same pod-only /readyz as Kubernetes instead
        # of inferring a path (it falls back to "/" when inference fails), never /api/status:
        # a shared dependency's outage must not take every backend out at once.
        "healthCheck": {
            "type": "HTTP",
            "requestPath": READINESS_PATH,
            "port": HTTP_PORT,
            "checkIntervalSec": 10,
            "timeoutSec": 5,
            "healthyThreshold": 1,
            "unhealthyThreshold": 3,
        },
        "connectionDraining": {"drainingTimeoutSec": ingress.connection_draining_seconds},
    }


def web_ingress(args: WebAppArgs) -> tuple[Peer, ...]:
    """Who may connect to the web pods. On GCP only Google's load balancer (its proxies, which
    have run IAP and Cloud Armor, and its health checks): a pod elsewhere in the cluster cannot
    go around the front door. On `local` nothing: `kubectl port-forward` enters the pod's own
    network namespace and is not subject to NetworkPolicy."""
    scraper = (args.metrics_scraper.peer(METRICS_PORT),) if args.metrics_scraper else ()
    if args.ingress is None:
        return scraper
    return (Peer(purpose="Google's load balancer and its health checks",
                 cidrs=GOOGLE_LOAD_BALANCER_RANGES, ports=(tcp(HTTP_PORT),)), *scraper)


def web_egress(args: WebAppArgs) -> tuple[Peer, ...]:
    """kube-dns, the broker (job submission), the database (jobs, the `migrate`
    initContainer, /readyz) and the configured external blocks."""
    return (*runtime_egress(args.runtime), *(rule.peer() for rule in args.allowed_egress))


def web_network_policy_args(name: str, args: WebAppArgs) -> k8s.networking.v1.NetworkPolicyInitArgs:
    return network_policy_args(
        name,
        args.runtime.namespace,
        web_labels(name),
        web_selector(name),
        ingress=web_ingress(args),
        egress=web_egress(args),
    )


class WebApp(pulumi.ComponentResource):
    """The web tier: Deployment (+ migrate), Service, PDB, NetworkPolicy, and Ingress on GCP."""

    service_name: pulumi.Output[str]
    """ClusterIP Service; `kubectl port-forward svc/<name> 8000:80` on the local stack."""
    url: pulumi.Output[str]
    """https://<domain>/ on GCP stacks; the in-cluster URL otherwise."""

    def __init__(
        self, name: str, args: WebAppArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("hacelery:web:WebApp", name, None, opts)
        validate_object_name(name, "WebApp name", max_length=48)
        child = child_options(self, opts)
        namespace = args.runtime.namespace
        labels = web_labels(name)

        k8s.apps.v1.Deployment(
            f"{name}-deployment", web_deployment_args(name, args),
            opts=child_options(self, opts, custom_timeouts=workload_timeouts(
                args.termination_grace_period_seconds)))
        service = k8s.core.v1.Service(f"{name}-service", service_args(name, args), opts=child)
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            pod_disruption_budget_args(name, namespace, labels, web_selector(name)),
            opts=child,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-network-policy", web_network_policy_args(name, args), opts=child
        )

        if args.ingress is not None:
            configs = [
                k8s.apiextensions.CustomResource(
                    f"{name}-backend-config",
                    api_version="cloud.google.com/v1",
                    kind="BackendConfig",
                    metadata=object_meta(backend_config_name(name), namespace, labels),
                    spec=backend_config_spec(args.ingress, name),
                    opts=child,
                ),
                k8s.apiextensions.CustomResource(
                    f"{name}-frontend-config",
                    api_version="networking.gke.io/v1beta1",
                    kind="FrontendConfig",
                    metadata=object_meta(frontend_config_name(name), namespace, labels),
                    spec=frontend_config_spec(args.ingress),
                    opts=child,
                ),
                k8s.apiextensions.CustomResource(
                    f"{name}-certificate",
                    api_version="networking.gke.io/v1",
                    kind="ManagedCertificate",
                    metadata=object_meta(certificate_name(name), namespace, labels),
                    spec=managed_certificate_spec(args.ingress),
                    opts=child,
                ),
            ]
            edge = args.ingress.edge
            if edge is not None and edge.iap_enabled and edge.oauth_client_id:
                configs.append(k8s.core.v1.Secret(
                    f"{name}-iap-oauth-client",
                    metadata=object_meta(oauth_secret_name(name), namespace, labels),
                    type="Opaque",
                    string_data={"client_id": edge.oauth_client_id,
                                 "client_secret": pulumi.Output.secret(
                                     edge.oauth_client_secret)},
                    opts=child))
            k8s.networking.v1.Ingress(
                f"{name}-ingress",
                ingress_args(name, args),
                opts=child_options(
                    self, opts,
                    depends_on=[service, *configs],
                    # `pulumi up` waits for the load balancer's address (several minutes), not
                    # for the certificate, which turns Active up to an hour after DNS resolves.
                    custom_timeouts=pulumi.CustomTimeouts(create="20m"),
                ),
            )
            self.url = pulumi.Output.from_input(f"https://{args.ingress.domain}/")
        else:
            self.url = pulumi.Output.concat(
                "http://", service.metadata.name, ".", namespace, ".svc:", str(SERVICE_PORT), "/"
            )

        self.service_name = service.metadata.name
        self.register_outputs({"service_name": self.service_name, "url": self.url})
