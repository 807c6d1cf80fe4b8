"""The front door on GCP: who may use the app (Identity-Aware Proxy) and what the load balancer
lets through (Cloud Armor, the TLS policy, HSTS).

Owns the Google Cloud side of the web entry:
  * ``WebAccessArgs``: default deny. IAP on the Ingress backend; only the listed members
    (users, groups, service accounts, domains) hold ``roles/iap.httpsResourceAccessor``, granted
    on the project's IAP-secured compute backends with an IAM condition on the app's host name
    (the backend service's name is chosen by the GKE Ingress controller at run time, so a grant
    on it cannot be written before it exists); ``public: true`` turns IAP off, explicitly;
  * ``EdgeArgs``: a Cloud Armor policy (per-client rate limits, a request-body limit in line
    with the app's own), an SSL policy (TLS >= 1.2, MODERN or RESTRICTED), and the HSTS header;
  * ``WebEdge``: those resources, the IAP API, the IAP settings for programmatic clients, and
    the names and blocks the web component writes into its BackendConfig and FrontendConfig.

Does not own the Ingress, the BackendConfig/FrontendConfig objects or the OAuth client's
Kubernetes Secret (``infra/web.py`` builds them from ``EdgeBackend``), and never reads config.
The OAuth consent screen and, for users outside the organisation, a custom OAuth client are
made by a person in the Cloud console: pulumi-gcp 10 has no resource for them (the IAP OAuth
Admin API behind ``iap.Brand``/``iap.Client`` was shut down).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.validation import check

ACCESSOR_ROLE = "roles/iap.httpsResourceAccessor"
_MEMBER = re.compile(
    r"^(user|group|serviceAccount):[^@\s]+@[^@\s]+\.[a-z]{2,}$|^domain:[a-z0-9.-]+\.[a-z]{2,}$")
_CLIENT_ID = re.compile(r"^[0-9]+-[a-z0-9]+\.apps\.googleusercontent\.com$")
SSL_PROFILES = ("MODERN", "RESTRICTED")
TLS_VERSIONS = ("TLS_1_2", "TLS_1_3")
RATE_INTERVALS = (10, 30, 60, 120, 180, 240, 300, 600, 900, 1200, 1800, 2700, 3600)
"""The interval lengths Cloud Armor accepts for a rate limit (rateLimitThreshold.intervalSec)."""
JOBS_PATH = "/api/jobs"


@dataclass(frozen=True, kw_only=True)
class WebAccessArgs:
    """Who may use the app (``ha-celery:access``). Default deny: IAP on, nobody listed."""

    public: bool = False
    """True: no IAP, anyone on the internet reaches the app (demos). Cloud Armor, TLS and HSTS
    stay. Must be said explicitly; ``members`` must then be empty."""
    members: tuple[str, ...] = ()
    """IAM principals allowed through IAP: ``user:alice@example.com``,
    ``group:celery-users@example.com``, ``serviceAccount:ci@PROJECT.iam.gserviceaccount.com``,
    ``domain:example.com``. Empty (and not public): nobody can sign in."""
    programmatic_clients: tuple[str, ...] = ()
    """OAuth client ids whose ID tokens IAP accepts from scripts (``curl``) while the app uses
    Google's managed OAuth client (project-wide IAP setting)."""
    oauth_client_id: str | None = None
    """A custom OAuth client (users outside your organisation, or ID tokens with this
    audience). Its secret: ``pulumi config set --secret ha-celery:iapOAuthClientSecret``. None:
    Google's managed OAuth client (your organisation's users, browser sign-in)."""

    def __post_init__(self) -> None:
        for member in self.members:
            check(isinstance(member, str) and bool(_MEMBER.match(member)), "WebAccessArgs.members",
                  member, "an IAM principal: user:EMAIL, group:EMAIL, serviceAccount:EMAIL or "
                  "domain:DOMAIN (allUsers is `public: true`)")
        check(len(set(self.members)) == len(self.members), "WebAccessArgs.members",
              list(self.members), "each principal once")
        check(not (self.public and self.members), "WebAccessArgs.members", list(self.members),
              "no members when public is true (everyone may use a public app); remove them or "
              "set public to false")
        for client in (*self.programmatic_clients,
                       *([self.oauth_client_id] if self.oauth_client_id else [])):
            check(bool(_CLIENT_ID.match(client)), "WebAccessArgs.oauth_client_id"
                  if client == self.oauth_client_id else "WebAccessArgs.programmatic_clients",
                  client, "an OAuth client id like 1234567890-abc123.apps.googleusercontent.com")
        check(not (self.public and (self.oauth_client_id or self.programmatic_clients)),
              "WebAccessArgs.public", self.public,
              "false when an OAuth client is configured (a public app has no IAP)")


@dataclass(frozen=True, kw_only=True)
class EdgeArgs:
    """What the load balancer lets through (``ha-celery:edge``)."""

    requests_per_minute: int = 600
    """Requests one client IP may make per minute, all paths; more get 429 until the rate falls.
    Users behind one NAT share it."""
    submissions_per_minute: int = 60
    """POST /api/jobs per client IP per minute (each is an LCS job for the workers)."""
    rate_limit_interval_seconds: int = 60
    """The window Cloud Armor counts in (the limits above are scaled to it)."""
    ssl_profile: str = "MODERN"
    """MODERN (wide client support, forward-secret ciphers) or RESTRICTED (AES-GCM only)."""
    min_tls_version: str = "TLS_1_2"
    hsts_max_age_seconds: int = 31_536_000
    """Browsers refuse plain HTTP to the domain for this long after one HTTPS visit (1 year)."""
    hsts_include_subdomains: bool = False
    """Off by default: other names under the domain (e.g. a status page CNAME) may not serve
    HTTPS; turn on once they all do."""
    max_body_bytes: int = 24_065_536
    """Requests declaring a larger body are refused at the edge. Wired from the app's own limit
    (``app/web.py`` MAX_CONTENT_LENGTH, from LCS_MAX_INPUT_CHARS); not a setting."""

    def __post_init__(self) -> None:
        check(1 <= self.requests_per_minute <= 1_000_000, "EdgeArgs.requests_per_minute",
              self.requests_per_minute, "1..1000000 requests per client and minute")
        check(1 <= self.submissions_per_minute <= self.requests_per_minute,
              "EdgeArgs.submissions_per_minute", self.submissions_per_minute,
              f"1..requests_per_minute ({self.requests_per_minute})")
        check(self.rate_limit_interval_seconds in RATE_INTERVALS,
              "EdgeArgs.rate_limit_interval_seconds", self.rate_limit_interval_seconds,
              f"one of {', '.join(map(str, RATE_INTERVALS))} (what Cloud Armor accepts)")
        check(self.ssl_profile in SSL_PROFILES, "EdgeArgs.ssl_profile", self.ssl_profile,
              "MODERN or RESTRICTED (COMPATIBLE allows weak ciphers)")
        check(self.min_tls_version in TLS_VERSIONS, "EdgeArgs.min_tls_version",
              self.min_tls_version, "TLS_1_2 or TLS_1_3")
        check(300 <= self.hsts_max_age_seconds <= 63_072_000, "EdgeArgs.hsts_max_age_seconds",
              self.hsts_max_age_seconds, "300..63072000 seconds (up to two years)")
        check(1024 <= self.max_body_bytes <= 2_000_000_000, "EdgeArgs.max_body_bytes",
              self.max_body_bytes, "1024..2000000000 bytes")

    def per_interval(self, per_minute: int) -> int:
        return max(1, round(per_minute * self.rate_limit_interval_seconds / 60))


def app_max_body_bytes(lcs_max_input_chars: int) -> int:
    """The app's own body limit (app/web.py: two inputs of up to 12 bytes per character as JSON
    escapes, plus 64 KiB); ``tests/infra/test_edge.py`` pins it to the Flask app's value."""
    return 2 * lcs_max_input_chars * 12 + 64 * 1024


# ----------------------------------------------------------------------------- pure builders


def greater_than_pattern(limit: int) -> str:
    """An RE2 pattern matching exactly the decimal numbers (no sign, no leading zeros beyond a
    lone 0) greater than ``limit``. Cloud Armor's rules language compares strings and regular
    expressions, not numbers, so "Content-Length > limit" is written this way."""
    digits = str(limit)
    alternatives = [f"[1-9][0-9]{{{len(digits)},}}"]  # more digits
    for index, digit in enumerate(digits):
        if digit == "9":
            continue
        prefix = digits[:index]
        rest = len(digits) - index - 1
        head = f"[{int(digit) + 1}-9]" if int(digit) < 8 else "9"
        alternatives.append(prefix + head + (f"[0-9]{{{rest}}}" if rest else ""))
    return "^(" + "|".join(alternatives) + ")$"


def body_limit_expression(limit: int) -> str:
    return (f"has(request.headers['content-length']) && "
            f"request.headers['content-length'].matches('{greater_than_pattern(limit)}')")


def security_policy_rules(edge: EdgeArgs) -> list[gcp.compute.SecurityPolicyRuleArgs]:
    """Pure: evaluated in priority order, the first match decides."""
    rules = gcp.compute

    def throttle(priority: int, description: str, match: gcp.compute.SecurityPolicyRuleMatchArgs,
                 count: int) -> gcp.compute.SecurityPolicyRuleArgs:
        return rules.SecurityPolicyRuleArgs(
            priority=priority, description=description, action="throttle", match=match,
            rate_limit_options=rules.SecurityPolicyRuleRateLimitOptionsArgs(
                conform_action="allow",
                exceed_action="deny(429)",
                # The client's address as the load balancer sees it (not X-Forwarded-For,
                # which a client can write itself).
                enforce_on_key="IP",
                rate_limit_threshold=rules.SecurityPolicyRuleRateLimitOptionsRateLimitThresholdArgs(
                    count=count, interval_sec=edge.rate_limit_interval_seconds)))

    every_address = rules.SecurityPolicyRuleMatchArgs(
        versioned_expr="SRC_IPS_V1",
        config=rules.SecurityPolicyRuleMatchConfigArgs(src_ip_ranges=["*"]))
    return [
        rules.SecurityPolicyRuleArgs(
            priority=1000,
            description="request body over the app's limit",
            # 403: the only client error a deny rule can answer (deny(403|404|502)). The app
            # refuses the same bodies with 413 (and those sent without Content-Length).
            action="deny(403)",
            match=rules.SecurityPolicyRuleMatchArgs(expr=rules.SecurityPolicyRuleMatchExprArgs(
                expression=body_limit_expression(edge.max_body_bytes)))),
        throttle(2000, "job submissions per client", rules.SecurityPolicyRuleMatchArgs(
            expr=rules.SecurityPolicyRuleMatchExprArgs(
                expression=f"request.method == 'POST' && request.path == '{JOBS_PATH}'")),
                 edge.per_interval(edge.submissions_per_minute)),
        throttle(3000, "requests per client", every_address,
                 edge.per_interval(edge.requests_per_minute)),
        rules.SecurityPolicyRuleArgs(priority=2147483647, description="default: allow",
                                     action="allow", match=every_address),
    ]


def security_policy_args(project: str, edge: EdgeArgs) -> gcp.compute.SecurityPolicyArgs:
    return gcp.compute.SecurityPolicyArgs(
        project=project,
        description="ha-celery web: body limit and per-client rate limits",
        type="CLOUD_ARMOR",
        rules=security_policy_rules(edge),
    )


def ssl_policy_args(project: str, edge: EdgeArgs) -> gcp.compute.SSLPolicyArgs:
    return gcp.compute.SSLPolicyArgs(
        project=project,
        description="ha-celery web: TLS 1.2 or newer, forward-secret ciphers only",
        min_tls_version=edge.min_tls_version,
        profile=edge.ssl_profile,
    )


def hsts_header(edge: EdgeArgs) -> str:
    value = f"max-age={edge.hsts_max_age_seconds}"
    if edge.hsts_include_subdomains:
        value += "; includeSubDomains"
    return f"Strict-Transport-Security: {value}"


def host_condition(domain: str) -> gcp.iap.WebTypeComputeIamBindingConditionArgs:
    """The grant holds for requests to the app's host only (IAP evaluates request.host, which it
    normalises: lower case, no trailing dot)."""
    return gcp.iap.WebTypeComputeIamBindingConditionArgs(
        title=f"ha-celery {domain}"[:100],
        description=f"IAP access to https://{domain}/ only",
        expression=f'request.host == "{domain}"',
    )


@dataclass(frozen=True, kw_only=True)
class EdgeBackend:
    """What the web component writes into its BackendConfig and FrontendConfig."""

    security_policy: pulumi.Input[str]
    ssl_policy: pulumi.Input[str]
    iap_enabled: bool
    response_headers: tuple[str, ...]
    oauth_client_id: str | None = None
    oauth_client_secret: pulumi.Input[str] | None = None


@dataclass(frozen=True, kw_only=True)
class WebEdgeArgs:
    project: str
    domain: str
    """The app's host name (no trailing dot)."""
    access: WebAccessArgs
    edge: EdgeArgs
    oauth_client_secret: pulumi.Input[str] | None = None
    """The custom OAuth client's secret (a secret Output from the stack's encrypted config)."""

    def __post_init__(self) -> None:
        check((self.access.oauth_client_id is None) == (self.oauth_client_secret is None),
              "WebEdgeArgs.oauth_client_secret", "set" if self.oauth_client_secret else None,
              "a secret exactly when access.oauth_client_id is set")


class WebEdge(pulumi.ComponentResource):
    """Cloud Armor, the SSL policy and IAP access for the web app's load balancer."""

    backend: EdgeBackend

    def __init__(self, name: str, args: WebEdgeArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hacelery:edge:WebEdge", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        armor = gcp.compute.SecurityPolicy(
            f"{name}-armor", args=security_policy_args(args.project, args.edge), opts=child)
        tls = gcp.compute.SSLPolicy(
            f"{name}-tls", args=ssl_policy_args(args.project, args.edge), opts=child)
        access = args.access
        if not access.public:
            # The API must be on before IAP can be enabled on a backend; leaving it on when the
            # stack goes keeps other IAP users of the project working.
            iap_api = gcp.projects.Service(
                f"{name}-iap-api", project=args.project, service="iap.googleapis.com",
                disable_on_destroy=False, opts=child)
            after_api = pulumi.ResourceOptions(parent=self, depends_on=[iap_api])
            if access.members:
                # Authoritative for this role *and this condition*: a member removed from the
                # stack loses access at the next `pulumi up`; grants made elsewhere with other
                # conditions are left alone.
                gcp.iap.WebTypeComputeIamBinding(
                    f"{name}-iap-access", project=args.project, role=ACCESSOR_ROLE,
                    members=list(access.members), condition=host_condition(args.domain),
                    opts=after_api)
            if access.programmatic_clients:
                gcp.iap.Settings(
                    f"{name}-iap-settings", name=f"projects/{args.project}/iap_web/compute",
                    access_settings=gcp.iap.SettingsAccessSettingsArgs(
                        oauth_settings=gcp.iap.SettingsAccessSettingsOauthSettingsArgs(
                            programmatic_clients=list(access.programmatic_clients))),
                    opts=after_api)
        self.backend = EdgeBackend(
            security_policy=armor.name,
            ssl_policy=tls.name,
            iap_enabled=not access.public,
            response_headers=(hsts_header(args.edge),),
            oauth_client_id=access.oauth_client_id,
            oauth_client_secret=args.oauth_client_secret,
        )
        self.register_outputs({"security_policy": armor.name, "ssl_policy": tls.name})

