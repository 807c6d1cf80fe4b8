"""The stack file's shape: which keys exist, what YAML type each holds, and pydantic's errors
turned into problem lines under the key as written.

Owns the top-level keys (``ha-celery:*`` and the two ``gcp:*`` keys the program reads), the
fixed-shape sections (``cluster``, ``dns``, ``local``), "did you mean" for a misspelled key at any
depth (``gcp:*`` against the Google provider's own key list), and the YAML hints for a value of
the wrong type. Each top-level key is validated on its own, so one bad section never hides
another's mistakes.

Does not check meaning (the components' Args do, through ``stacks/config.py`` and
``stacks/config_workloads.py``) and never reads ``pulumi.Config``.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel

from stacks.config_problems import Problems, closest, expected_from_pydantic, yaml_hint

PROJECT = "ha-celery"
_SNAKE_BOUNDARY = re.compile(r"(?<!^)(?=[A-Z])")


# ---------------------------------------------------------------------------------------------
# The shape of the YAML, as the user writes it (camelCase keys). None means "not set".


class _Shape(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid",
                              frozen=True, strict=False)


class _AuthorizedNetwork(_Shape):
    cidr: str
    display_name: str | None = None


class _NodePool(_Shape):
    name: str
    machine_type: str | None = None
    min_nodes_per_zone: int | None = None
    max_nodes_per_zone: int | None = None
    disk_size_gb: int | None = None
    disk_type: str | None = None
    spot: bool | None = None


class ClusterShape(_Shape):
    release_channel: Literal["RAPID", "REGULAR", "STABLE", "EXTENDED"] | None = None
    deletion_protection: bool | None = None
    private_endpoint: bool | None = None
    master_authorized_networks: tuple[_AuthorizedNetwork, ...] | None = None
    master_ipv4_cidr: str | None = None
    subnet_cidr: str | None = None
    pods_cidr: str | None = None
    services_cidr: str | None = None
    maintenance_recurrence: str | None = None
    rbac_security_group: str | None = None
    node_pools: tuple[_NodePool, ...] | None = None


class _DnsRecord(_Shape):
    name: str
    type: str
    rrdatas: tuple[str, ...]
    ttl: int | None = None


class _Dns(_Shape):
    domain: str
    ttl: int | None = None
    mx: tuple[str, ...] | None = None
    spf: str | None = None
    wildcard: bool | None = None
    caa_issuers: tuple[str, ...] | None = None
    records: tuple[_DnsRecord, ...] | None = None


class _Local(_Shape):
    kube_context: str | None = None


class StackShape(_Shape):
    """Every `ha-celery:*` key (plus `gcp:project` / `gcp:region`). Workload sections are
    mappings here: ``stacks/config_workloads.py`` checks them field by field against their
    component's Args."""

    platform: Literal["gcp", "local"] = "gcp"
    namespace: str = "ha-celery"
    protect: bool = True
    """Pulumi refuses to delete or replace what holds the platform's data (see README)."""
    kubernetes_version: str = "1.33"
    zones: tuple[str, ...] | None = None
    cluster: ClusterShape | None = None
    dns: _Dns | None = None
    local: _Local | None = None
    gcp_project: str | None = None
    gcp_region: str | None = None
    image: dict[str, Any] | None = None
    rabbitmq: dict[str, Any] | None = None
    postgres: dict[str, Any] | None = None
    backup: dict[str, Any] | None = None
    workers: dict[str, dict[str, Any] | None] | None = None
    keda: dict[str, Any] | None = None
    web: dict[str, Any] | None = None
    flower: dict[str, Any] | None = None
    scheduler: dict[str, Any] | None = None
    sweeper: dict[str, Any] | None = None
    tls: dict[str, Any] | None = None
    access: dict[str, Any] | None = None
    """Who may use the app through IAP (GCP stacks); checked against ``WebAccessArgs``."""
    edge: dict[str, Any] | None = None
    """Cloud Armor limits, TLS policy, HSTS (GCP stacks); checked against ``EdgeArgs``."""
    observability: dict[str, Any] | None = None
    """Scraping, alert thresholds and receivers; checked against ``ObservabilitySettings``."""
    app: dict[str, Any] | None = None
    """Plain environment for every app pod (e.g. LCS_LARGE_THRESHOLD); each value is checked
    (and credentials refused) by ``stacks/config_workloads.py``."""


GCP_FIELDS = {"gcp_project": "gcp:project", "gcp_region": "gcp:region"}
OWN_KEYS = {to_camel(name): name for name in StackShape.model_fields if name not in GCP_FIELDS}
"""Top-level `ha-celery:` keys as written in a stack file -> ``StackShape`` field."""
APP_SECRETS_KEY = "appSecrets"
"""Read by ``load`` as a secret (only its names reach ``parse``)."""
IAP_SECRET_KEY = "iapOAuthClientSecret"
"""The custom IAP OAuth client's secret: read by ``load`` as a secret (``parse`` only learns
whether it is set)."""
SMTP_SECRET_KEY = "alertSmtpPassword"
"""The alert mail relay's password: read by ``load`` as a secret (``parse`` only learns whether
it is set); it ends up only in the Alertmanager Secret."""
SECRET_KEYS = (APP_SECRETS_KEY, IAP_SECRET_KEY, SMTP_SECRET_KEY)


def _is_text(annotation: Any) -> bool:
    """A top-level setting Pulumi hands over as a plain string (not JSON)."""
    args = typing.get_args(annotation)
    return annotation is str or typing.get_origin(annotation) is Literal or (
        bool(args) and all(a is str or typing.get_origin(a) is Literal for a in args
                           if a is not type(None)))


TEXT_KEYS = tuple(key for key, name in OWN_KEYS.items()
                  if _is_text(StackShape.model_fields[name].annotation))


def given(**values: Any) -> dict[str, Any]:
    """Drop unset values so the Args default applies (one place for each default)."""
    return {key: value for key, value in values.items() if value is not None}


def top_key(field_name: str) -> str:
    """A ``StackShape`` field as the stack file spells its key (``gcp:region``, ...)."""
    return GCP_FIELDS.get(field_name, f"{PROJECT}:{to_camel(field_name)}")


def snake(key: str) -> str:
    """``memoryMib`` -> ``memory_mib`` (Args field names)."""
    return _SNAKE_BOUNDARY.sub("_", key).lower()


# ---------------------------------------------------------------------------------------------
# Shape checks: pydantic errors as config keys


def _model_at(annotation: Any, path: tuple[Any, ...]) -> type[_Shape] | None:
    """The shape model that the pydantic location ``path`` points into (for "allowed" keys)."""
    for part in (*path, None):
        while typing.get_args(annotation) and not (isinstance(annotation, type)
                                                   and issubclass(annotation, _Shape)):
            args = [a for a in typing.get_args(annotation) if a is not type(None)
                    and a is not Ellipsis]
            if not args:
                return None
            annotation = args[0]
        if part is None:
            break
        if isinstance(part, int):
            continue
        if not (isinstance(annotation, type) and issubclass(annotation, _Shape)):
            return None
        fields = {to_camel(name): f for name, f in annotation.model_fields.items()}
        fields.update(annotation.model_fields)
        if part not in fields:
            return None
        annotation = fields[part].annotation
    return annotation if isinstance(annotation, type) and issubclass(annotation, _Shape) else None


def _shape_problems(problems: Problems, key: str, annotation: Any,
                    error: ValidationError) -> None:
    """One problem line per pydantic error, under ``key`` plus the error's location (YAML keys,
    so as written). A required key that is only missing because it is misspelled is reported
    once, as the misspelling."""
    errors = error.errors()
    misspelled = set()
    for item in errors:
        if item["type"] == "extra_forbidden":
            location = tuple(item["loc"])
            model = _model_at(annotation, location[:-1])
            guess = closest(str(location[-1]), [to_camel(n) for n in model.model_fields]
                            if model else [])
            misspelled.add((*location[:-1], guess))
    for item in errors:
        location = tuple(item["loc"])
        path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in location)
        full = f"{key}{path}"
        value = item.get("input")
        kind = item["type"]
        if kind == "extra_forbidden":
            model = _model_at(annotation, location[:-1])
            allowed = [to_camel(n) for n in model.model_fields] if model else []
            problems.unknown(full, str(location[-1]), allowed)
        elif kind == "missing":
            if location not in misspelled:
                problems.note(full, "missing; this setting is required here")
        elif kind in ("string_type", "literal_error") or kind.startswith("string_"):
            problems.add(full, value, expected_from_pydantic(item["msg"]),
                         hint=yaml_hint(value))
        else:
            problems.add(full, value, expected_from_pydantic(item["msg"]))


def validate_top_level(own: Mapping[str, Any], gcp: Mapping[str, Any],
                       problems: Problems) -> dict[str, Any]:
    """Each top-level key on its own, so one bad section never hides another one's mistakes.
    Returns the valid values by ``StackShape`` field name."""
    valid: dict[str, Any] = {}
    for key, value in own.items():
        if key == "kubernetesVersion":
            continue  # checked by _kubernetes_version, which knows what YAML did to it
        name = OWN_KEYS.get(key)
        if name is None:
            problems.unknown(f"{PROJECT}:{key}", key, [*OWN_KEYS, *SECRET_KEYS],
                             qualifier=f"{PROJECT}:")
            continue
        annotation = StackShape.model_fields[name].annotation
        try:
            valid[name] = TypeAdapter(annotation).validate_python(value)
        except ValidationError as error:
            _shape_problems(problems, f"{PROJECT}:{key}", annotation, error)
    for key, value in gcp.items():
        name = f"gcp_{key}"
        if name not in GCP_FIELDS:
            known = _gcp_provider_keys()
            if key not in known:
                problems.unknown(f"gcp:{key}", key, known, list_allowed=False, qualifier="gcp:")
            continue
        if value is None:
            continue
        try:
            valid[name] = TypeAdapter(str).validate_python(value)
        except ValidationError:
            problems.add(f"gcp:{key}", value, "text", hint=yaml_hint(value))
    return valid


def _gcp_provider_keys() -> list[str]:
    """Every `gcp:*` key the Google Cloud provider reads (project, region, zone, credentials,
    impersonateServiceAccount, ...), from the installed provider itself."""
    import pulumi_gcp.config

    exportable = pulumi_gcp.config._ExportableConfig
    return sorted(to_camel(name) for name, value in vars(exportable).items()
                  if isinstance(value, property))


def split_namespaces(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(`ha-celery:` keys, `gcp:` keys), each without its namespace and as written.

    Keys may be fully qualified (``gcp:region``, ``ha-celery:zones``) or, for `ha-celery:`,
    bare (``zones``); ``gcp_project`` / ``gcp_region`` are short for the two provider keys."""
    own: dict[str, Any] = {}
    gcp: dict[str, Any] = {}
    for key, value in values.items():
        if key.startswith("gcp:"):
            gcp[key[len("gcp:"):]] = value
        elif key in GCP_FIELDS:
            gcp[key[len("gcp_"):]] = value
        else:
            own[key.removeprefix(f"{PROJECT}:")] = value
    return own, gcp


def shape_keys() -> dict[str, tuple[str, ...]]:
    """The fixed-shape settings and their keys as written: top level, cluster, dns, local."""
    reference: dict[str, tuple[str, ...]] = {
        PROJECT: (*OWN_KEYS, *SECRET_KEYS),
        "gcp": tuple(GCP_FIELDS.values()),
    }
    for key, model in (("cluster", ClusterShape), ("cluster.nodePools", _NodePool),
                       ("cluster.masterAuthorizedNetworks", _AuthorizedNetwork),
                       ("dns", _Dns), ("dns.records", _DnsRecord), ("local", _Local)):
        reference[f"{PROJECT}:{key}"] = tuple(to_camel(name) for name in model.model_fields)
    return reference
