"""Stack configuration: the ONLY module that reads ``pulumi.Config``.

Reads `Pulumi.<stack>.yaml` once, checks its shape (types, allowed values, unknown keys) with
pydantic, then builds the components' Args dataclasses, whose own validation checks meaning
(ranges, CIDR overlaps, names inside the DNS zone). Every problem is reported in one run, before
any resource is registered, as ``KEY: got VALUE; expected ...`` with KEY spelled as in the YAML
file (see ``stacks/config_problems.py``): a file with N independent mistakes gets N lines. A
setting that only makes sense once another one is valid is checked against a stand-in for that
other one, so its own mistakes are still found; the stand-ins never reach a StackConfig.

Credentials are refused in plain settings (``ha-celery:app``; see ``stacks/credentials.py``):
they belong in ``ha-celery:appSecrets``, which stays encrypted all the way into a Secret.

Defaults live in exactly one place: a setting left out of the stack file is not passed on, so the
component's Args default applies. The only defaults here are stack-level ones that no component
owns (platform kind, namespace, Kubernetes version).

The parts: ``stacks/config_shape.py`` (which keys exist and their YAML types),
``stacks/config_workloads.py`` (the workload sections -> Args), ``stacks/config_problems.py``
(how problems are reported), and this module (the stack-level settings, GKE and DNS, and reading
``pulumi.Config``). To add a setting to a workload section, add the field to its Args: every Args
field is settable unless ``config_workloads._SECTIONS`` says the platform wires it. A new section
is one spec there, one ``StackShape`` field and one ``section(...)`` call in ``build_workloads``.

Does not decide what gets built from the settings (``stacks/platform.py`` does) and never touches
resources.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from infra.dns import DnsArgs, DnsRecord
from infra.gke import AuthorizedNetwork, GkeClusterArgs, NodePoolArgs
from stacks.config_problems import ConfigError, Problems, yaml_hint
from stacks.config_shape import (
    APP_SECRETS_KEY,
    IAP_SECRET_KEY,
    OWN_KEYS,
    PROJECT,
    SMTP_SECRET_KEY,
    TEXT_KEYS,
    ClusterShape,
    StackShape,
    given,
    shape_keys,
    split_namespaces,
    top_key,
    validate_top_level,
)
from stacks.config_workloads import (
    SET_SECRET_COMMAND,
    STAND_IN_PROJECT,
    STAND_IN_REGION,
    GcpContext,
    WorkloadConfig,
    app_secret_names,
    build_workloads,
    section_keys,
)

SUPPORTED_KUBERNETES_VERSIONS = tuple(f"1.{minor}" for minor in range(25, 38))
"""Minor versions whose OpenAPI schema the offline plan can validate against."""
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True, kw_only=True)
class StackConfig:
    """Everything one stack builds, as component Args. GCP parts are None on `local`."""

    stack: str
    platform: Literal["gcp", "local"]
    namespace: str
    kubernetes_version: str
    protect: bool = True
    """``ha-celery:protect``: the namespace, the StatefulSets and their claims, the backup
    bucket and key, the DNS zone and the cluster are protected (see each component)."""
    gke: GkeClusterArgs | None = None
    dns: DnsArgs | None = None
    kube_context: str | None = None
    app_secret_values: Any = None
    """``ha-celery:appSecrets`` as a secret Output (values never leave it), or None."""
    iap_oauth_client_secret: Any = None
    alert_smtp_password: Any = None
    """``ha-celery:alertSmtpPassword`` as a secret Output, or None."""
    """``ha-celery:iapOAuthClientSecret`` as a secret Output, or None."""
    workloads: WorkloadConfig | None = None
    """Everything that runs in the cluster. Fields the platform wires from other components'
    outputs (namespace, image, Secret names, hosts) hold placeholders here and are replaced by
    ``stacks/platform.py`` with ``dataclasses.replace`` (which validates again)."""

    @property
    def on_gcp(self) -> bool:
        return self.platform == "gcp"

    @property
    def zones(self) -> tuple[str, ...]:
        return self.gke.zones if self.gke else ()


# ---------------------------------------------------------------------------------------------
# Parsing


def parse(values: Mapping[str, Any], stack: str) -> StackConfig:
    """Validate raw settings and build the stack's Args. Pure: tests call it directly.

    ``values``: keys as in the stack file (``ha-celery:`` may be left out), values as YAML gives
    them; ``appSecrets`` maps secret names to anything (only the names are read here)."""
    return _parse(values, stack, Problems())


def _parse(values: Mapping[str, Any], stack: str, problems: Problems) -> StackConfig:
    own, gcp = split_namespaces(values)
    secret_names = own.pop(APP_SECRETS_KEY, None)
    iap_secret_set = own.pop(IAP_SECRET_KEY, None) is not None
    smtp_secret_set = own.pop(SMTP_SECRET_KEY, None) is not None
    valid = validate_top_level(own, gcp, problems)
    # The stack-level scalars: checked here (the shape only says "text").
    version = _kubernetes_version(problems, own)
    namespace = valid.get("namespace", StackShape.model_fields["namespace"].default)
    if not _DNS_LABEL.match(namespace):
        problems.add(f"{PROJECT}:namespace", namespace,
                     "a DNS label: lower-case letters, digits and '-'")
        namespace = StackShape.model_fields["namespace"].default
    raw = StackShape.model_construct(**{**valid, "kubernetes_version": version,
                                        "namespace": namespace})
    platform = None if problems.failed(f"{PROJECT}:platform") else raw.platform

    gke = dns = context = None
    if platform == "gcp":
        gke, dns, context = _gcp_parts(raw, problems)
    elif platform == "local":
        for key, value in (("zones", raw.zones), ("cluster", raw.cluster), ("dns", raw.dns),
                           ("gcp_project", raw.gcp_project), ("gcp_region", raw.gcp_region)):
            if value is not None:
                problems.add(top_key(key), "set",
                             "nothing: the local stack creates no GCP resources (remove it)")

    names = app_secret_names(problems, secret_names, raw.app)
    workloads = build_workloads(raw, stack, platform, context, dns, names, problems,
                                iap_secret_set=iap_secret_set, smtp_secret_set=smtp_secret_set)
    if problems:
        raise ConfigError(stack, problems.items)
    assert platform is not None and workloads is not None
    return StackConfig(
        stack=stack,
        platform=platform,
        namespace=raw.namespace,
        kubernetes_version=raw.kubernetes_version,
        protect=raw.protect,
        gke=gke,
        dns=dns,
        kube_context=raw.local.kube_context if raw.local else None,
        workloads=workloads,
    )


def _kubernetes_version(problems: Problems, own: Mapping[str, Any]) -> str:
    default = StackShape.model_fields["kubernetes_version"].default
    key = f"{PROJECT}:kubernetesVersion"
    written = own.get("kubernetesVersion", default)
    if isinstance(written, str | float) and str(written) in SUPPORTED_KUBERNETES_VERSIONS:
        return str(written)  # an unquoted 1.33 is the number 1.33, which reads back the same
    expected = f"one of {', '.join(SUPPORTED_KUBERNETES_VERSIONS)}"
    # An unquoted 1.30 arrives as the number 1.3 (or the text '1.3', through Pulumi's config):
    # name the version the user most likely wrote.
    number = None if isinstance(written, bool) else _as_number(written)
    meant = [v for v in SUPPORTED_KUBERNETES_VERSIONS if number is not None
             and _as_number(v) == number]
    if meant:
        hint = (f" (did you mean \"{meant[0]}\"? YAML reads an unquoted {meant[0]} as the number "
                f"{written}: write kubernetesVersion: \"{meant[0]}\")")
    else:
        hint = yaml_hint(written, wanted="a version") if not isinstance(written, str) else ""
    problems.add(key, written, expected, hint=hint)
    return default


def _as_number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------
# GCP: the cluster and DNS


def _gcp_parts(raw: StackShape, problems: Problems
               ) -> tuple[GkeClusterArgs | None, DnsArgs | None, GcpContext]:
    missing = [key for key in ("gcp_project", "gcp_region", "zones")
               if getattr(raw, key) is None and not problems.failed(top_key(key))]
    for key in missing:
        # A misspelled `gcp:regoin` was already reported with "did you mean 'gcp:region'?".
        if not any(f"did you mean '{top_key(key)}'" in item for item in problems.items):
            problems.add(top_key(key), None,
                         "a value: GCP stacks need gcp:project, gcp:region and ha-celery:zones")

    # Region and zones first, on their own: the cluster's other settings are then checked
    # against them, or against a stand-in when they are wrong (reported once, under their keys).
    placement_ok = False
    if not missing and not any(problems.failed(top_key(k)) for k in ("gcp_region", "zones")):
        placement_ok = problems.build(
            f"{PROJECT}:cluster", GkeClusterArgs,
            fixed={"project": raw.gcp_project or STAND_IN_PROJECT},
            settings={"region": raw.gcp_region, "zones": raw.zones},
            names={"region": "gcp:region", "zones": f"{PROJECT}:zones"}) is not None
    region = raw.gcp_region if placement_ok else STAND_IN_REGION
    # Two stand-in zones: a regional disk (two zones) must not add a problem of its own when
    # the real zones were already reported.
    zones = raw.zones if placement_ok else (f"{STAND_IN_REGION}-b", f"{STAND_IN_REGION}-c")
    project = raw.gcp_project if raw.gcp_project and not problems.failed("gcp:project") \
        else STAND_IN_PROJECT

    cluster = raw.cluster or ClusterShape()
    pools = None
    if cluster.node_pools is not None:
        pools = tuple(problems.build(
            f"{PROJECT}:cluster.nodePools[{index}]", NodePoolArgs,
            settings=given(name=pool.name, machine_type=pool.machine_type,
                           min_nodes_per_zone=pool.min_nodes_per_zone,
                           max_nodes_per_zone=pool.max_nodes_per_zone,
                           disk_size_gb=pool.disk_size_gb, disk_type=pool.disk_type,
                           spot=pool.spot))
            for index, pool in enumerate(cluster.node_pools))
    networks = None
    if cluster.master_authorized_networks is not None:
        networks = tuple(problems.build(
            f"{PROJECT}:cluster.masterAuthorizedNetworks[{index}]", AuthorizedNetwork,
            settings=given(cidr=network.cidr, display_name=network.display_name))
            for index, network in enumerate(cluster.master_authorized_networks))

    gke = None
    if not problems.failed(f"{PROJECT}:cluster"):
        gke = problems.build(
            f"{PROJECT}:cluster", GkeClusterArgs,
            fixed={"project": project, "region": region, "zones": zones,
                   "kubernetes_version": raw.kubernetes_version, "protect": raw.protect},
            settings=given(
                node_pools=pools, release_channel=cluster.release_channel,
                # GKE's own deletion protection follows ha-celery:protect unless set on its own.
                deletion_protection=(cluster.deletion_protection
                                     if cluster.deletion_protection is not None
                                     else raw.protect),
                master_authorized_networks=networks,
                private_endpoint=cluster.private_endpoint,
                master_ipv4_cidr=cluster.master_ipv4_cidr, subnet_cidr=cluster.subnet_cidr,
                pods_cidr=cluster.pods_cidr, services_cidr=cluster.services_cidr,
                maintenance_recurrence=cluster.maintenance_recurrence,
                rbac_security_group=cluster.rbac_security_group))

    dns = None
    if raw.dns is not None:
        records = [problems.build(
            f"{PROJECT}:dns.records[{index}]", DnsRecord,
            settings=given(name=record.name, type=record.type, rrdatas=record.rrdatas,
                           ttl=record.ttl))
            for index, record in enumerate(raw.dns.records or ())]
        if all(records):
            dns = problems.build(
                f"{PROJECT}:dns", DnsArgs, fixed={"project": project, "protect": raw.protect},
                settings=given(domain=raw.dns.domain, ttl=raw.dns.ttl, mx=raw.dns.mx,
                               spf=raw.dns.spf, wildcard=raw.dns.wildcard,
                               caa_issuers=raw.dns.caa_issuers,
                               records=tuple(records) if records else None))

    context = GcpContext(project=project, region=region, zones=tuple(zones))
    return gke, dns, context


# ---------------------------------------------------------------------------------------------
# What a stack file may contain (the README's settings tables are tested against this)


def settable_keys() -> dict[str, tuple[str, ...]]:
    """Every structured setting and its keys as written in a stack file, e.g.
    ``{"ha-celery:rabbitmq": ("replicas", "image", ...), ...}``; nested mappings (a pool's
    ``resources``) are entries of their own (``ha-celery:workers.<queue>.resources``). The
    README's settings table is tested against it, so the two cannot drift."""
    return {**shape_keys(), **section_keys()}


# ---------------------------------------------------------------------------------------------
# Reading from the Pulumi runtime.


def load(stack: str | None = None) -> StackConfig:
    """Read this stack's settings through ``pulumi.Config`` and validate them."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    stack = stack or pulumi.get_stack()
    own = pulumi.Config(PROJECT)
    gcp = pulumi.Config("gcp")
    values: dict[str, Any] = {}
    problems = Problems()
    present = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    for full_key in sorted(present):
        namespace, _, key = full_key.partition(":")
        if namespace == "gcp":
            # Only project and region are read; other provider keys (credentials among them)
            # are checked by name only and their values never leave the provider.
            values[full_key] = gcp.get(key) if key in ("project", "region") else None
        elif namespace != PROJECT or key == APP_SECRETS_KEY:
            continue
        elif key in (IAP_SECRET_KEY, SMTP_SECRET_KEY):
            # Its value is never read in the clear: parse learns only that it is set.
            if not runtime_config.is_config_secret(full_key):
                problems.note(full_key, "stored in plain text; set it encrypted with `pulumi "
                              f"config set --secret {full_key} VALUE` (and rotate it: the "
                              "plain value is in the stack file's history)")
            values[full_key] = "set"
        elif key in TEXT_KEYS or key not in OWN_KEYS:
            values[full_key] = own.get(key)
        else:
            try:
                values[full_key] = own.get_object(key)
            except Exception:  # a value that is not YAML/JSON structure (not echoed)
                problems.note(full_key, "expected a list or mapping (see the README's settings "
                              "table), got text")
    # Credentials for the tasks (`pulumi config set --secret --path appSecrets.SENTRY_DSN ...`):
    # only their names are read in the clear (to validate them and reference them); the values
    # stay inside a secret Output all the way into the Kubernetes Secret.
    app_secret_values = None
    raw_secrets = runtime_config.get_config(f"{PROJECT}:{APP_SECRETS_KEY}")
    if raw_secrets is not None:
        try:
            secrets = json.loads(raw_secrets) if isinstance(raw_secrets, str) else raw_secrets
            if not (isinstance(secrets, dict)
                    and all(isinstance(v, str) for v in secrets.values())):
                raise ValueError
        except ValueError:
            problems.note(f"{PROJECT}:{APP_SECRETS_KEY}", (
                "expected a mapping of environment variable names to secret strings ("
                + SET_SECRET_COMMAND.format(name="NAME") + ")"))
        else:
            values[f"{PROJECT}:{APP_SECRETS_KEY}"] = dict.fromkeys(secrets)
            app_secret_values = own.get_secret_object(APP_SECRETS_KEY)
    config = _parse(values, stack, problems)
    iap_secret = own.get_secret(IAP_SECRET_KEY) if f"{PROJECT}:{IAP_SECRET_KEY}" in values \
        else None
    smtp_password = own.get_secret(SMTP_SECRET_KEY) \
        if f"{PROJECT}:{SMTP_SECRET_KEY}" in values else None
    return dataclasses.replace(config, app_secret_values=app_secret_values,
                               iap_oauth_client_secret=iap_secret,
                               alert_smtp_password=smtp_password)


__all__ = ["PROJECT", "SUPPORTED_KUBERNETES_VERSIONS", "ConfigError", "StackConfig",
           "WorkloadConfig", "load", "parse", "settable_keys"]
