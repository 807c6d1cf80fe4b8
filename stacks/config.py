"""Stack configuration: the ONLY module that reads ``pulumi.Config``.

Reads `Pulumi.<stack>.yaml` once, checks its shape (types, allowed values, unknown keys) with
pydantic, then builds the components' Args dataclasses, whose own validation checks meaning
(ranges, CIDR overlaps, names inside the DNS zone). Every problem is reported at once, before any
resource is registered, as ``KEY: got VALUE; expected ...`` with KEY spelled as in the YAML file.

Defaults live in exactly one place: a setting left out of the stack file is not passed on, so the
component's Args default applies. The only defaults here are stack-level ones that no component
owns (platform kind, namespace, Kubernetes version).

Does not decide what gets built from the settings (``stacks/platform.py`` does) and never touches
resources.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from infra.backup import GcsBackupStorage, LocalBackupStorage, PgHoardBackupArgs
from infra.celery import (
    AppRuntimeArgs,
    CpuAutoscalingArgs,
    QueueAutoscalingArgs,
    SecretKeyRef,
    WorkerPoolArgs,
)
from infra.dns import DnsArgs, DnsRecord
from infra.flower import FlowerArgs
from infra.gke import AuthorizedNetwork, GkeClusterArgs, NodePoolArgs
from infra.images import AppImageArgs, ImageBuildArgs
from infra.keda import KedaArgs
from infra.postgres import PostgresArgs
from infra.rabbitmq import RabbitMQClusterArgs
from infra.scheduler import SchedulerJobArgs
from infra.sweeper import JobSweeperArgs
from infra.validation import ArgsError
from infra.web import WebAppArgs, WebIngressArgs

PROJECT = "ha-celery"
SUPPORTED_KUBERNETES_VERSIONS = tuple(f"1.{minor}" for minor in range(25, 38))
"""Minor versions whose OpenAPI schema the offline plan can validate against."""
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class ConfigError(ValueError):
    """One or more stack settings are wrong; ``problems`` holds one line per setting."""

    def __init__(self, stack: str, problems: list[str], *, missing_file: bool = False) -> None:
        self.stack = stack
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        if missing_file:
            message = (f"stack '{stack}' cannot be read:\n{lines}\nCreate it with "
                       f"`pulumi stack init {stack}` or pick a known stack.")
        else:
            message = (
                f"stack '{stack}' has {len(problems)} invalid setting(s) in "
                f"Pulumi.{stack}.yaml:\n{lines}\nFix them with `pulumi config set <key> "
                "<value>` (or edit the file); nothing was created.")
        super().__init__(message)


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


class _Cluster(_Shape):
    release_channel: Literal["RAPID", "REGULAR", "STABLE", "EXTENDED"] | None = None
    deletion_protection: bool | None = None
    private_endpoint: bool | None = None
    master_authorized_networks: tuple[_AuthorizedNetwork, ...] | None = None
    master_ipv4_cidr: str | None = None
    subnet_cidr: str | None = None
    pods_cidr: str | None = None
    services_cidr: str | None = None
    maintenance_recurrence: str | None = None
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


class _Stack(_Shape):
    """Every `ha-celery:*` key (plus `gcp:project` / `gcp:region`). Workload sections are
    checked field by field against their component's Args (see ``_section``)."""

    platform: Literal["gcp", "local"] = "gcp"
    namespace: str = "ha-celery"
    protect: bool = True
    """Pulumi refuses to delete or replace what holds the platform's data (see README)."""
    kubernetes_version: str = "1.33"
    zones: tuple[str, ...] | None = None
    cluster: _Cluster | None = None
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
    app_secret_names: tuple[str, ...] | None = None
    app: dict[str, str | bool | int | float] | None = None
    """Plain environment for every app pod (e.g. LCS_LARGE_THRESHOLD); YAML numbers are fine."""


_GCP_KEYS = {"gcp_project": "gcp:project", "gcp_region": "gcp:region"}


# ---------------------------------------------------------------------------------------------
# The validated result.

# Stand-ins for values that only exist once other components are created. They are valid, so
# the Args can be built (and every user setting checked) before any resource is registered.
PLACEHOLDER_IMAGE = "placeholder.invalid/ha-celery:plan"
PLACEHOLDER_SECRET = SecretKeyRef(name="placeholder", key="placeholder")


@dataclass(frozen=True, kw_only=True)
class WorkloadConfig:
    """The in-cluster part of a stack, as component Args (see StackConfig.workloads)."""

    app_image: AppImageArgs
    pghoard_image: AppImageArgs
    rabbitmq: RabbitMQClusterArgs
    postgres: PostgresArgs
    backup: PgHoardBackupArgs
    workers: dict[str, WorkerPoolArgs]
    keda: KedaArgs | None
    web: WebAppArgs
    flower: FlowerArgs
    scheduler: SchedulerJobArgs
    sweeper: JobSweeperArgs
    app_secret_names: tuple[str, ...] = ()
    """Environment variables the app pods read from the `app-secrets` Secret."""


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


def _set(**values: Any) -> dict[str, Any]:
    """Drop unset values so the Args default applies (one place for each default)."""
    return {key: value for key, value in values.items() if value is not None}


def _config_key(path: tuple[Any, ...]) -> str:
    """('cluster', 'nodePools', 0, 'minNodesPerZone') -> 'ha-celery:cluster.nodePools[0]...'."""
    head, *rest = path
    head = str(head)
    text = _GCP_KEYS.get(head, f"{PROJECT}:{to_camel(head) if '_' in head else head}")
    for part in rest:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


class _Problems:
    """Collects problems so the user sees all of them in one run."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, key: str, value: Any, expected: str) -> None:
        self.items.append(f"{key}: got {value!r}; expected {expected}")

    def build(self, key_prefix: str, factory: Callable[..., Any], **kwargs: Any) -> Any:
        """Call an Args constructor; report its ArgsError under the config key."""
        try:
            return factory(**kwargs)
        except ArgsError as error:
            attribute = error.field.split(".", 1)[1] if "." in error.field else error.field
            camel = ".".join(to_camel(part) for part in attribute.split("."))
            self.add(f"{key_prefix}.{camel}" if key_prefix else camel, error.value,
                     error.allowed)
            return None
        except ValueError as error:  # a check that has no single field (e.g. two together)
            self.items.append(f"{key_prefix}: {error}")
            return None


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def parse(values: Mapping[str, Any], stack: str) -> StackConfig:
    """Validate raw settings (keys without the `ha-celery:` prefix; `gcp_project`, `gcp_region`
    for the provider's keys) and build the stack's Args. Pure: tests call it directly."""
    values = {_snake(key): value for key, value in values.items()}
    problems = _Problems()
    # Checked on the raw values first, so they are reported even when the shape is wrong.
    version = values.get("kubernetes_version", _Stack.model_fields["kubernetes_version"].default)
    if version not in SUPPORTED_KUBERNETES_VERSIONS:
        problems.add(f"{PROJECT}:kubernetesVersion", version,
                     f"one of {', '.join(SUPPORTED_KUBERNETES_VERSIONS)}")
    namespace = values.get("namespace", _Stack.model_fields["namespace"].default)
    if not isinstance(namespace, str) or not _DNS_LABEL.match(namespace):
        problems.add(f"{PROJECT}:namespace", namespace,
                     "a DNS label: lower-case letters, digits and '-'")
    try:
        raw = _Stack.model_validate(dict(values))
    except ValidationError as error:
        for item in error.errors():
            location = tuple(item["loc"])
            key = _config_key(location) if location else f"{PROJECT}:*"
            if item["type"] == "extra_forbidden":
                problems.items.append(
                    f"{key}: unknown setting (check the spelling; allowed keys are listed in "
                    "Pulumi.yaml and the README)")
            else:
                problems.add(key, item.get("input"), item["msg"].replace("Input should be ",
                                                                          "").rstrip("."))
        raise ConfigError(stack, problems.items) from None

    gke = dns = None
    if problems.items:
        raise ConfigError(stack, problems.items)
    if raw.platform == "gcp":
        gke, dns = _gcp_parts(raw, problems)
    else:
        for key, value in (("zones", raw.zones), ("cluster", raw.cluster), ("dns", raw.dns),
                           ("gcp_project", raw.gcp_project), ("gcp_region", raw.gcp_region)):
            if value is not None:
                problems.add(_config_key((key,)), "set",
                             "nothing: the local stack creates no GCP resources (remove it)")

    workloads = None
    if not problems.items:
        workloads = _workloads(raw, stack, gke, dns, problems)
    if problems.items:
        raise ConfigError(stack, problems.items)
    return StackConfig(
        stack=stack,
        platform=raw.platform,
        namespace=raw.namespace,
        kubernetes_version=raw.kubernetes_version,
        protect=raw.protect,
        gke=gke,
        dns=dns,
        kube_context=raw.local.kube_context if raw.local else None,
        workloads=workloads,
    )


def _gcp_parts(raw: _Stack, problems: _Problems) -> tuple[GkeClusterArgs | None,
                                                           DnsArgs | None]:
    for key in ("gcp_project", "gcp_region", "zones"):
        if getattr(raw, key) is None:
            problems.add(_config_key((key,)), None,
                         "a value: GCP stacks need gcp:project, gcp:region and ha-celery:zones")
    if problems.items:
        return None, None

    cluster = raw.cluster or _Cluster()
    pools = None
    if cluster.node_pools is not None:
        pools = []
        for index, pool in enumerate(cluster.node_pools):
            built = problems.build(
                f"{PROJECT}:cluster.nodePools[{index}]", NodePoolArgs,
                **_set(name=pool.name, machine_type=pool.machine_type,
                       min_nodes_per_zone=pool.min_nodes_per_zone,
                       max_nodes_per_zone=pool.max_nodes_per_zone,
                       disk_size_gb=pool.disk_size_gb, disk_type=pool.disk_type, spot=pool.spot))
            pools.append(built)
    networks = None
    if cluster.master_authorized_networks is not None:
        networks = []
        for index, network in enumerate(cluster.master_authorized_networks):
            networks.append(problems.build(
                f"{PROJECT}:cluster.masterAuthorizedNetworks[{index}]", AuthorizedNetwork,
                **_set(cidr=network.cidr, display_name=network.display_name)))
    if problems.items:
        return None, None

    gke = _build_gke(raw, cluster, pools, networks, problems)
    dns = None
    if raw.dns is not None:
        records = []
        for index, record in enumerate(raw.dns.records or ()):
            records.append(problems.build(
                f"{PROJECT}:dns.records[{index}]", DnsRecord,
                **_set(name=record.name, type=record.type, rrdatas=record.rrdatas,
                       ttl=record.ttl)))
        if not problems.items:
            dns = _build_dns(raw, records, problems)
    return gke, dns


def _build_gke(raw: _Stack, cluster: _Cluster, pools: list | None, networks: list | None,
               problems: _Problems) -> GkeClusterArgs | None:
    # Region and zones are top-level keys, the rest live under ha-celery:cluster.
    fields = _set(
        project=raw.gcp_project, region=raw.gcp_region, zones=raw.zones,
        node_pools=tuple(pools) if pools is not None else None,
        release_channel=cluster.release_channel,
        kubernetes_version=raw.kubernetes_version,
        # GKE's own deletion protection follows ha-celery:protect unless set on its own.
        deletion_protection=(cluster.deletion_protection if cluster.deletion_protection
                             is not None else raw.protect),
        protect=raw.protect,
        master_authorized_networks=tuple(networks) if networks is not None else None,
        private_endpoint=cluster.private_endpoint,
        master_ipv4_cidr=cluster.master_ipv4_cidr, subnet_cidr=cluster.subnet_cidr,
        pods_cidr=cluster.pods_cidr, services_cidr=cluster.services_cidr,
        maintenance_recurrence=cluster.maintenance_recurrence,
    )
    try:
        return GkeClusterArgs(**fields)
    except ArgsError as error:
        attribute = error.field.split(".", 1)[1]
        key = {"project": "gcp:project", "region": "gcp:region",
               "zones": f"{PROJECT}:zones",
               "kubernetes_version": f"{PROJECT}:kubernetesVersion"}.get(
            attribute, f"{PROJECT}:cluster.{to_camel(attribute)}")
        problems.add(key, error.value, error.allowed)
        return None


def _build_dns(raw: _Stack, records: list, problems: _Problems) -> DnsArgs | None:
    dns = raw.dns
    assert dns is not None
    try:
        return DnsArgs(**_set(project=raw.gcp_project, domain=dns.domain, ttl=dns.ttl,
                              protect=raw.protect,
                              mx=dns.mx, spf=dns.spf, wildcard=dns.wildcard,
                              caa_issuers=dns.caa_issuers,
                              records=tuple(records) if records else None))
    except ArgsError as error:
        attribute = error.field.split(".", 1)[1]
        problems.add(f"{PROJECT}:dns.{'.'.join(to_camel(p) for p in attribute.split('.'))}",
                     error.value, error.allowed)
        return None


# ---------------------------------------------------------------------------------------------
# Workload sections: each YAML mapping is checked field by field against its Args' own types,
# so a new Args field is configurable without touching this module.


def _snake_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {_snake(key) if isinstance(key, str) else key: _snake_keys(item)
                for key, item in value.items()}
    if isinstance(value, list):
        return [_snake_keys(item) for item in value]
    return value


def _field_type(cls: type, name: str) -> Any:
    """The evaluated annotation of one dataclass field (annotations are strings here)."""
    import sys

    annotation = next(f.type for f in dataclasses.fields(cls) if f.name == name)
    if not isinstance(annotation, str):
        return annotation
    return eval(annotation, vars(sys.modules[cls.__module__]))  # noqa: S307 - our own source


def _section(problems: _Problems, key: str, cls: type, raw: Mapping[str, Any] | None,
             wired: Mapping[str, Any], *, extra: tuple[str, ...] = (),
             hidden: tuple[str, ...] = ()) -> tuple[Any, dict[str, Any]]:
    """Build ``cls`` from the user's mapping at ``ha-celery:<key>`` plus the ``wired`` fields.

    Returns (Args or None, the ``extra`` keys' values). Unknown keys, wrong types and values the
    Args refuse are added to ``problems`` under their full config key."""
    from pydantic import TypeAdapter

    prefix = f"{PROJECT}:{key}"
    settable = [f.name for f in dataclasses.fields(cls)
                if f.name not in wired and f.name not in hidden]
    values: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    before = len(problems.items)
    for user_key, value in (raw or {}).items():
        name = _snake(user_key)
        if name in extra:
            extras[name] = value
            continue
        if name not in settable:
            allowed = ", ".join(to_camel(n) for n in (*settable, *extra))
            problems.items.append(f"{prefix}.{user_key}: unknown setting; allowed: {allowed}")
            continue
        try:
            values[name] = TypeAdapter(_field_type(cls, name)).validate_python(_snake_keys(value))
        except ValidationError as error:
            for item in error.errors():
                path = "".join(f"[{p}]" if isinstance(p, int) else f".{to_camel(str(p))}"
                               for p in item["loc"])
                message = item["msg"].replace("Input should be ", "").replace("Value error, ", "")
                problems.add(f"{prefix}.{user_key}{path}", item.get("input"), message.rstrip("."))
    if len(problems.items) > before:
        return None, extras
    return problems.build(prefix, cls, **wired, **values), extras


def _image(problems: _Problems, key: str, raw: Mapping[str, Any] | None, gke: GkeClusterArgs | None,
           *, context: str, dockerfile: str, image_name: str,
           repository_id: str | None = None) -> AppImageArgs | None:
    """A pinned `ref`, or (GCP stacks, the default there) `build` into Artifact Registry."""
    raw = dict(raw or {})
    ref = raw.pop("ref", None)
    build = raw.pop("build", None)
    for unknown in raw:
        problems.items.append(f"{PROJECT}:{key}.{unknown}: unknown setting; allowed: ref, build")
    if ref is not None:
        if build is not None:
            problems.add(f"{PROJECT}:{key}", "ref and build", "one of them, not both")
            return None
        try:
            return AppImageArgs(image=ref)
        except ArgsError as error:
            problems.add(f"{PROJECT}:{key}.ref", error.value, error.allowed)
            return None
    if gke is None:
        problems.add(f"{PROJECT}:{key}.ref", None,
                     "a pinned image reference (name:tag or name@sha256:...): the local stack "
                     "builds nothing; build the image and load it into your cluster")
        return None
    build = dict(build) if isinstance(build, dict) else {}
    if repository_id and "repositoryId" not in build:
        # Each image gets its own repository: two components may not own one repository.
        build["repositoryId"] = repository_id
    build_args, _ = _section(problems, f"{key}.build", ImageBuildArgs, build,
                             {"project": gke.project, "location": gke.region,
                              "context_path": context, "dockerfile_path": dockerfile,
                              "image_name": image_name},
                             hidden=("reader_service_account",))
    return AppImageArgs(build=build_args) if build_args else None


def _replaced(obj: Any, **changes: Any) -> Any:
    """``dataclasses.replace``, callable with keywords only (so ``_Problems.build`` can wrap it)."""
    return dataclasses.replace(obj, **changes)


def _env_text(value: str | bool | int | float) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _workloads(raw: _Stack, stack: str, gke: GkeClusterArgs | None, dns: DnsArgs | None,
               problems: _Problems) -> WorkloadConfig | None:
    from app.settings import QUEUES

    namespace = raw.namespace
    # The app image's context is the repository root (it installs from uv.lock); the pghoard
    # image's is its own directory (its Dockerfile copies the scripts next to it).
    app_image = _image(problems, "image", raw.image, gke, context=".",
                       dockerfile="app/Dockerfile", image_name="app")
    backup_raw = dict(raw.backup or {})
    pghoard_image = _image(problems, "backup.image", backup_raw.pop("image", None), gke,
                           context="pghoard", dockerfile="pghoard/Dockerfile",
                           image_name="pghoard",
                           repository_id="ha-celery-pghoard")
    secret_names = tuple(raw.app_secret_names or ())
    runtime = problems.build(f"{PROJECT}:app", AppRuntimeArgs, namespace=namespace,
                             image=PLACEHOLDER_IMAGE, broker_url=PLACEHOLDER_SECRET,
                             database_url=PLACEHOLDER_SECRET,
                             secret_settings={name: PLACEHOLDER_SECRET for name in secret_names},
                             settings={name: _env_text(value) for name, value in
                                       (raw.app or {}).items()})
    keda_raw = dict(raw.keda or {})
    keda_enabled = keda_raw.pop("enabled", True)
    if not isinstance(keda_enabled, bool):
        problems.add(f"{PROJECT}:keda.enabled", keda_enabled, "true or false")
        keda_enabled = False
    keda = None
    if keda_enabled:
        keda, _ = _section(problems, "keda", KedaArgs, keda_raw, {"watch_namespace": namespace})

    rabbitmq, _ = _section(problems, "rabbitmq", RabbitMQClusterArgs, raw.rabbitmq, {
        "namespace": namespace, "zones": gke.zones if gke else (), "protect": raw.protect,
        # KEDA's operator reads queue depth from the management API, from its own namespace.
        "management_client_namespaces": (keda.namespace,) if keda else ()})
    postgres, _ = _section(problems, "postgres", PostgresArgs, raw.postgres,
                           {"namespace": namespace, "protect": raw.protect})

    storage_raw = backup_raw.pop("storage", None)
    if gke is not None:
        storage, _ = _section(problems, "backup.storage", GcsBackupStorage, storage_raw, {
            "project": gke.project,
            **({} if storage_raw and "location" in storage_raw else {"location": gke.region}),
            **({} if storage_raw and "bucketName" in storage_raw
               else {"bucket_name": f"{gke.project}-{stack}-pghoard"}),
            # Follows ha-celery:protect unless set on its own.
            **({} if storage_raw and "deletionProtection" in storage_raw
               else {"deletion_protection": raw.protect}),
        })
    else:
        storage, _ = _section(problems, "backup.storage", LocalBackupStorage, storage_raw, {})
    backup = None
    if storage is not None and postgres is not None:
        backup, _ = _section(problems, "backup", PgHoardBackupArgs, backup_raw, {
            "namespace": namespace, "image": PLACEHOLDER_IMAGE, "storage": storage,
            "protect": raw.protect,
            "database_host": "placeholder", "replication_user": "placeholder",
            "replication_password": "placeholder", "replication_slot": "placeholder",
            "postgres_major_version": postgres.major_version,
        })

    workers: dict[str, WorkerPoolArgs] = {}
    pools = raw.workers if raw.workers is not None else {queue: {} for queue in QUEUES}
    for queue in QUEUES:
        if queue not in pools:
            problems.add(f"{PROJECT}:workers", sorted(pools),
                         f"a pool for every queue the app routes to ({', '.join(QUEUES)}); "
                         f"'{queue}' is missing, so its tasks would never run")
    for queue, pool_raw in pools.items():
        if runtime is None:
            break
        pool, extras = _section(
            problems, f"workers.{queue}", WorkerPoolArgs, pool_raw, {
                "runtime": runtime, "queue": queue,
            }, extra=("messages_per_replica", "polling_interval_seconds",
                      "target_cpu_utilization_percent"), hidden=("autoscaling",))
        if pool is None:
            continue
        if keda_enabled:
            scaling = problems.build(f"{PROJECT}:workers.{queue}", QueueAutoscalingArgs, **_set(
                queue_monitor_secret_name="placeholder",
                messages_per_replica=extras.get("messages_per_replica"),
                polling_interval_seconds=extras.get("polling_interval_seconds")))
        else:
            scaling = problems.build(f"{PROJECT}:workers.{queue}", CpuAutoscalingArgs, **_set(
                target_cpu_utilization_percent=extras.get("target_cpu_utilization_percent")))
        if scaling is not None:
            workers[queue] = problems.build(f"{PROJECT}:workers.{queue}", _replaced, obj=pool,
                                            autoscaling=scaling)

    ingress = None
    if dns is not None:
        ingress = problems.build(f"{PROJECT}:dns", WebIngressArgs,
                                 domain=dns.domain.rstrip("."), global_address_name="placeholder")
    web = flower = scheduler = sweeper = None
    if runtime is not None:
        web, _ = _section(problems, "web", WebAppArgs, raw.web,
                          {"runtime": runtime, "ingress": ingress})
        flower, _ = _section(problems, "flower", FlowerArgs, raw.flower, {"runtime": runtime})
        scheduler, _ = _section(problems, "scheduler", SchedulerJobArgs, raw.scheduler,
                                {"runtime": runtime})
        sweeper, _ = _section(problems, "sweeper", JobSweeperArgs, raw.sweeper,
                              {"runtime": runtime})
    if problems.items:
        return None
    return WorkloadConfig(app_image=app_image, pghoard_image=pghoard_image, rabbitmq=rabbitmq,
                          postgres=postgres, backup=backup, workers=workers, keda=keda, web=web,
                          flower=flower, scheduler=scheduler, sweeper=sweeper,
                          app_secret_names=secret_names)


# ---------------------------------------------------------------------------------------------
# Reading from the Pulumi runtime.

_OBJECT_KEYS = ("zones", "cluster", "dns", "local", "image", "rabbitmq", "postgres", "backup",
                "workers", "keda", "web", "flower", "scheduler", "sweeper", "app")
_STRING_KEYS = ("platform", "namespace", "kubernetesVersion", "protect")


def load(stack: str | None = None) -> StackConfig:
    """Read this stack's settings through ``pulumi.Config`` and validate them."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    stack = stack or pulumi.get_stack()
    own = pulumi.Config(PROJECT)
    gcp = pulumi.Config("gcp")
    values: dict[str, Any] = {}
    problems: list[str] = []
    for key in _STRING_KEYS:
        value = own.get(key)
        if value is not None:
            values[_snake(key)] = value
    for key in _OBJECT_KEYS:
        try:
            value = own.get_object(key)
        except Exception:  # a value that is not YAML/JSON structure
            problems.append(f"{PROJECT}:{key}: got {own.get(key)!r}; expected a list or "
                            "mapping (see Pulumi.yaml)")
            continue
        if value is not None:
            values[key] = value
    # Credentials for the tasks (`pulumi config set --secret --path appSecrets.SENTRY_DSN ...`):
    # only their names are read in the clear (to validate them and reference them); the values
    # stay inside a secret Output all the way into the Kubernetes Secret.
    app_secret_values = None
    raw_secrets = runtime_config.get_config(f"{PROJECT}:appSecrets")
    if raw_secrets is not None:
        try:
            names = json.loads(raw_secrets) if isinstance(raw_secrets, str) else raw_secrets
            assert isinstance(names, dict) and all(isinstance(v, str) for v in names.values())
        except (ValueError, AssertionError):
            problems.append(f"{PROJECT}:appSecrets: expected a mapping of environment variable "
                            "names to secret strings (pulumi config set --secret --path "
                            "'appSecrets.NAME' VALUE)")
        else:
            values["app_secret_names"] = tuple(sorted(names))
            app_secret_values = own.get_secret_object("appSecrets")
    if gcp.get("project") is not None:
        values["gcp_project"] = gcp.get("project")
    if gcp.get("region") is not None:
        values["gcp_region"] = gcp.get("region")

    known = {f"{PROJECT}:{key}" for key in (*_OBJECT_KEYS, *_STRING_KEYS, "appSecrets")}
    present = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    for key in sorted(k for k in present if k.startswith(f"{PROJECT}:") and k not in known):
        problems.append(f"{key}: unknown setting (check the spelling; allowed keys: "
                        f"{', '.join(sorted(known))})")
    if problems:
        raise ConfigError(stack, problems)
    return dataclasses.replace(parse(values, stack), app_secret_values=app_secret_values)


__all__ = ["SUPPORTED_KUBERNETES_VERSIONS", "ConfigError", "StackConfig", "load", "parse"]
