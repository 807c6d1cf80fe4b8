"""The workload sections of a stack file (``ha-celery:rabbitmq``, ``postgres``, ``backup``,
``workers``, ``web``, ``flower``, ``scheduler``, ``sweeper``, ``keda``, ``image``, ``app``,
``appSecrets``, and the front door's ``access`` and ``edge`` with ``iapOAuthClientSecret``)
turned into the components' Args.

Each section is checked field by field against its Args' own types (``_SECTIONS`` below), so a
new Args field is a new setting without touching this module; fields the platform wires from
other components are declared there and refused as settings. Plain app settings refuse
credentials (``stacks/credentials.py``). Every problem goes to the caller's ``Problems`` under its
key as written.

Does not read config (``stacks/config.py`` does), and does not check the GCP sections.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel

from infra.backup import GcsBackupStorage, LocalBackupStorage, PgHoardBackupArgs
from infra.celery import (
    MANAGED_ENV,
    AppRuntimeArgs,
    CpuAutoscalingArgs,
    QueueAutoscalingArgs,
    SecretKeyRef,
    WorkerPoolArgs,
)
from infra.certificates import CertificatePolicy
from infra.dns import DnsArgs
from infra.edge import EdgeArgs, WebAccessArgs, app_max_body_bytes
from infra.flower import FlowerArgs
from infra.images import AppImageArgs, ImageBuildArgs
from infra.keda import KedaArgs
from infra.observability.settings import ObservabilitySettings
from infra.postgres import PostgresArgs
from infra.rabbitmq import RabbitMQClusterArgs
from infra.scheduler import SchedulerJobArgs
from infra.sweeper import JobSweeperArgs
from infra.web import WebAppArgs, WebIngressArgs
from stacks.config_problems import Problems, closest, expected_from_pydantic, yaml_hint
from stacks.config_shape import (
    APP_SECRETS_KEY,
    IAP_SECRET_KEY,
    PROJECT,
    SMTP_SECRET_KEY,
    StackShape,
    given,
    snake,
)
from stacks.credentials import credential_reason

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SET_SECRET_COMMAND = "pulumi config set --secret --path 'appSecrets.{name}' VALUE"
"""How a credential gets into the stack file encrypted (named in every refusal)."""

# Stand-ins for values that only exist once other components are created. They are valid, so
# the Args can be built (and every user setting checked) before any resource is registered.
PLACEHOLDER_IMAGE = "placeholder.invalid/ha-celery:plan"
PLACEHOLDER_SECRET = SecretKeyRef(name="placeholder", key="placeholder")
# Stand-ins for a GCP project/region/zones that are missing or wrong (already reported), so the
# settings that use them are still checked. Only ever used when the run fails anyway.
STAND_IN_PROJECT = "placeholder-project"
STAND_IN_REGION = "europe-west1"


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
    certificates: CertificatePolicy = dataclasses.field(default_factory=CertificatePolicy)
    """Validity and renewal of the stack CA's certificates (``ha-celery:tls``)."""
    access: WebAccessArgs | None = None
    """Who may use the app (GCP stacks with a domain); None: no public entry at all."""
    edge: EdgeArgs | None = None
    app_secret_names: tuple[str, ...] = ()
    """Environment variables the app pods read from the `app-secrets` Secret."""
    observability: ObservabilitySettings = dataclasses.field(
        default_factory=ObservabilitySettings)
    """Scraping, alert thresholds and receivers (``ha-celery:observability``)."""


@dataclass(frozen=True)
class GcpContext:
    """What the workload sections take from the GCP settings (or stand-ins if those failed)."""

    project: str
    region: str
    zones: tuple[str, ...]


# ---------------------------------------------------------------------------------------------
# Workload sections: each YAML mapping is checked field by field against its Args' own types,
# so a new Args field is configurable without touching this module.


@dataclass(frozen=True)
class _Section:
    """How one workload mapping in the stack file becomes an Args object."""

    args: type
    wired: frozenset[str] = frozenset()
    """Fields the platform fills in from other components or stack-level settings."""
    hidden: frozenset[str] = frozenset()
    """Fields that are not settings (their Args default always applies)."""
    extra: tuple[str, ...] = ()
    """Keys read here rather than passed to ``args`` (e.g. a pool's autoscaling)."""
    nested: tuple[str, ...] = ()
    """Keys that are sections of their own (``backup.image``, ``backup.storage``)."""

    def settable(self) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(self.args)
                     if f.name not in self.wired and f.name not in self.hidden)


_IMAGE_BUILD = _Section(ImageBuildArgs, frozenset({
    "project", "location", "context_path", "dockerfile_path", "image_name"}),
    hidden=frozenset({"reader_service_account"}))
_KEDA = _Section(KedaArgs, frozenset({"watch_namespace"}), extra=("enabled",),
                 # Wired by the platform from the cluster and the broker.
                 hidden=frozenset({"control_plane_cidrs", "queue_monitor", "metrics_scraper"}))
# `protect` is the stack-level ha-celery:protect, wired into every component that holds data.
_RABBITMQ = _Section(RabbitMQClusterArgs, frozenset({
    "namespace", "zones", "management_client_namespaces", "protect",
    "queue_monitor_secret_namespace"}),
    # Wired by the platform from the cluster (the control plane's range).
    hidden=frozenset({"kubernetes_api_cidrs", "certificate_authority", "metrics_scraper"}))
# `zones` are the stack's (ha-celery:zones): a regional disk's zones must be two of them.
_POSTGRES = _Section(PostgresArgs, frozenset({"namespace", "protect", "zones"}),
                     hidden=frozenset({"certificate_authority", "metrics_scraper"}))
_TLS = _Section(CertificatePolicy)
_GCS_STORAGE = _Section(GcsBackupStorage, frozenset({"project"}))
_LOCAL_STORAGE = _Section(LocalBackupStorage)
_BACKUP = _Section(PgHoardBackupArgs, frozenset({
    "namespace", "image", "storage", "protect", "database_host", "replication_user",
    "replication_password", "replication_slot", "postgres_major_version"}),
    # The database's port and pghoard's site name are the platform's wiring, not settings: a
    # changed site would hide every existing backup from the restore.
    hidden=frozenset({"database_port", "site", "trust_bundle", "database_peer",
                      "database_volume_gib", "metrics_scraper"}),
    nested=("image", "storage"))
_WORKER_POOL = _Section(WorkerPoolArgs, frozenset({"runtime", "queue"}),
                        hidden=frozenset({"autoscaling"}),
                        extra=("messages_per_replica", "polling_interval_seconds",
                               "target_cpu_utilization_percent"))
_WEB = _Section(WebAppArgs, frozenset({"runtime", "ingress"}),
               hidden=frozenset({"metrics_scraper"}))
_FLOWER = _Section(FlowerArgs, frozenset({"runtime"}), hidden=frozenset({"metrics_scraper"}))
_SCHEDULER = _Section(SchedulerJobArgs, frozenset({"runtime"}))
_SWEEPER = _Section(JobSweeperArgs, frozenset({"runtime"}))
_ACCESS = _Section(WebAccessArgs)
# The body limit follows the app's own (LCS_MAX_INPUT_CHARS), so it is not a setting.
_EDGE = _Section(EdgeArgs, frozenset({"max_body_bytes"}))
_OBSERVABILITY = _Section(ObservabilitySettings)

_SECTIONS: tuple[tuple[str, _Section], ...] = (
    ("image.build", _IMAGE_BUILD), ("keda", _KEDA), ("rabbitmq", _RABBITMQ),
    ("postgres", _POSTGRES), ("backup", _BACKUP), ("backup.storage", _GCS_STORAGE),
    ("backup.storage", _LOCAL_STORAGE), ("workers.<queue>", _WORKER_POOL), ("web", _WEB),
    ("flower", _FLOWER), ("scheduler", _SCHEDULER), ("sweeper", _SWEEPER), ("tls", _TLS),
    ("access", _ACCESS), ("edge", _EDGE), ("observability", _OBSERVABILITY),
)
"""Every workload section, for ``settable_keys`` (the README's settings table is tested
against it)."""


# Where the wired fields that come from the stack file are set: an error about one of them is
# reported under that key (a bad gcp:project shows up first in the backup bucket's checks).
_WIRED_FROM = {"project": "gcp:project", "location": "gcp:region",
               "zones": f"{PROJECT}:zones", "namespace": f"{PROJECT}:namespace",
               "watch_namespace": f"{PROJECT}:namespace"}


def _snake_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {snake(key) if isinstance(key, str) else key: _snake_keys(item)
                for key, item in value.items()}
    if isinstance(value, list):
        return [_snake_keys(item) for item in value]
    return value


def _field_type(cls: type, name: str) -> Any:
    """The evaluated annotation of one dataclass field (annotations are strings here)."""
    annotation = next(f.type for f in dataclasses.fields(cls) if f.name == name)
    if not isinstance(annotation, str):
        return annotation
    return eval(annotation, vars(sys.modules[cls.__module__]))  # noqa: S307 - our own source


def _unknown_nested_keys(problems: Problems, key: str, annotation: Any, value: Any) -> bool:
    """Keys inside a nested setting (``resources: {cpuRequst: ...}``) that its dataclass does
    not have. pydantic ignores extra keys of plain dataclasses, so they are checked here."""
    found = False
    options = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    for option in options:
        if dataclasses.is_dataclass(option) and isinstance(value, Mapping):
            fields = {f.name: f for f in dataclasses.fields(option)}
            for user_key, item in value.items():
                name = snake(str(user_key))
                if name not in fields:
                    problems.unknown(f"{key}.{user_key}", str(user_key),
                                     [to_camel(n) for n in fields])
                    found = True
                else:
                    found |= _unknown_nested_keys(problems, f"{key}.{user_key}",
                                                  _field_type(option, name), item)
        elif typing.get_origin(option) is tuple and isinstance(value, list):
            item_type = typing.get_args(option)[0]
            for index, item in enumerate(value):
                found |= _unknown_nested_keys(problems, f"{key}[{index}]", item_type, item)
    return found


def _value_problems(problems: Problems, key: str, annotation: Any,
                    error: ValidationError) -> None:
    """pydantic's errors for one setting; an Args error inside a nested value (``resources``)
    is reported under the nested key, as the user wrote it."""
    nested = {f.name for f in dataclasses.fields(annotation)} \
        if dataclasses.is_dataclass(annotation) else set()
    for item in error.errors():
        path = "".join(f"[{part}]" if isinstance(part, int) else
                       f".{to_camel(part) if '_' in str(part) else part}" for part in item["loc"])
        cause = (item.get("ctx") or {}).get("error")
        if isinstance(cause, ValueError):
            problems.args_error(f"{key}{path}", cause, {}, nested)
            continue
        value = item.get("input")
        hint = yaml_hint(value) if item["type"].startswith(("string", "literal")) else ""
        if item["type"] == "extra_forbidden":
            problems.note(f"{key}{path}", "unknown setting; check the spelling")
        else:
            problems.add(f"{key}{path}", value, expected_from_pydantic(item["msg"]), hint=hint)


def _section(problems: Problems, key: str, spec: _Section, raw: Any,
             wired: Mapping[str, Any], *, defaults: Mapping[str, Any] | None = None
             ) -> tuple[Any, dict[str, Any]]:
    """Build ``spec.args`` from the user's mapping at ``ha-celery:<key>`` plus the ``wired``
    fields; ``defaults`` stand in for settings the user left out (e.g. the bucket name).

    Returns (Args or None, the ``extra`` keys' values). Unknown keys, wrong types and values the
    Args refuse are added to ``problems`` under their full config key, as written."""
    if set(wired) != spec.wired:  # a programming error: the wiring and _SECTIONS disagree
        raise AssertionError(f"{key}: wired {sorted(wired)} != declared {sorted(spec.wired)}")
    prefix = f"{PROJECT}:{key}"
    if raw is not None and not isinstance(raw, Mapping):
        problems.add(prefix, raw, "a mapping of settings (see the README's settings table)")
        return None, {}
    settable = spec.settable()
    names = {name: _WIRED_FROM[name] for name in spec.wired if name in _WIRED_FROM}
    values: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    before = len(problems)
    for user_key, value in (raw or {}).items():
        name = snake(str(user_key))
        if name in spec.extra:
            extras[name] = value
            continue
        if name not in settable:
            allowed = [to_camel(n) for n in (*settable, *spec.extra, *spec.nested)]
            problems.unknown(f"{prefix}.{user_key}", str(user_key), allowed)
            continue
        names[name] = str(user_key)
        annotation = _field_type(spec.args, name)
        if _unknown_nested_keys(problems, f"{prefix}.{user_key}", annotation, value):
            continue
        try:
            values[name] = TypeAdapter(annotation).validate_python(_snake_keys(value))
        except ValidationError as error:
            _value_problems(problems, f"{prefix}.{user_key}", annotation, error)
    if len(problems) > before:
        return None, extras
    fixed = {**{k: v for k, v in (defaults or {}).items() if k not in values}, **wired}
    return problems.build(prefix, spec.args, fixed=fixed, settings=values, names=names), extras


def _image(problems: Problems, key: str, raw: Any, gcp: GcpContext | None, *, context: str,
           dockerfile: str, image_name: str,
           repository_id: str | None = None) -> AppImageArgs | None:
    """A pinned `ref`, or (GCP stacks, the default there) `build` into Artifact Registry."""
    prefix = f"{PROJECT}:{key}"
    if raw is not None and not isinstance(raw, Mapping):
        problems.add(prefix, raw, "a mapping with `ref` (a pinned image) or `build`")
        return None
    raw = dict(raw or {})
    ref = raw.pop("ref", None)
    build = raw.pop("build", None)
    for unknown in raw:
        problems.unknown(f"{prefix}.{unknown}", str(unknown), ["ref", "build"])
    if ref is not None:
        if build is not None:
            problems.add(prefix, "ref and build", "one of them, not both")
            return None
        if not isinstance(ref, str):
            problems.add(f"{prefix}.ref", ref, "an image reference (text)", hint=yaml_hint(ref))
            return None
        return problems.build(prefix, AppImageArgs, settings={"image": ref},
                              names={"image": "ref"})
    if gcp is None:
        problems.add(f"{prefix}.ref", None,
                     "a pinned image reference (name:tag or name@sha256:...): the local stack "
                     "builds nothing; build the image and load it into your cluster")
        return None
    if build is not None and not isinstance(build, Mapping):
        problems.add(f"{prefix}.build", build, "a mapping of build settings")
        return None
    build_args, _ = _section(
        problems, f"{key}.build", _IMAGE_BUILD, build,
        {"project": gcp.project, "location": gcp.region, "context_path": context,
         "dockerfile_path": dockerfile, "image_name": image_name},
        # Each image gets its own repository: two components may not own one repository.
        defaults={"repository_id": repository_id} if repository_id else None)
    return AppImageArgs(build=build_args) if build_args else None


def _replaced(obj: Any, **changes: Any) -> Any:
    """``dataclasses.replace``, callable with keywords only (so ``Problems.build`` can wrap it)."""
    return dataclasses.replace(obj, **changes)


# ---------------------------------------------------------------------------------------------
# The app's environment: plain settings and the names of secret ones


def _app_settings(problems: Problems, raw: Mapping[str, Any] | None) -> dict[str, str]:
    """``ha-celery:app`` as environment variables. Refuses credentials by name and by value
    shape (never quoting the value), names the platform sets itself, and YAML values whose
    text may not be what the user typed (1.10 -> 1.1, on -> true)."""
    settings: dict[str, str] = {}
    for name, value in (raw or {}).items():
        key = f"{PROJECT}:app.{name}"
        if not _ENV_NAME.match(str(name)):
            problems.add(key, name, "an environment variable name (letters, digits, '_', not "
                         "starting with a digit)")
            continue
        if name in MANAGED_ENV:
            problems.note(key, f"the platform sets {name} itself (from its Secrets): remove it")
            continue
        reason = credential_reason(name, value)
        if reason is not None:
            problems.note(key, (
                f"refused as a credential: {reason}. Plain settings are written into every "
                "app pod's spec and into the plan output; set it encrypted instead with `"
                + SET_SECRET_COMMAND.format(name=name) + "` and remove it from ha-celery:app"))
            continue
        if isinstance(value, bool | float):
            problems.add(key, value, "text or a whole number",
                         hint=yaml_hint(value, wanted="that exact text"))
        elif isinstance(value, int):
            settings[name] = str(value)
        elif isinstance(value, str):
            settings[name] = value
        else:  # a list or mapping: its content is not echoed (it could hold anything)
            problems.note(key, f"got a {type(value).__name__}; expected text or a whole number "
                          "(one environment variable)")
    return settings


def app_secret_names(problems: Problems, raw: Any,
                     app: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The names under ``ha-celery:appSecrets`` (their values never come here)."""
    if raw is None:
        return ()
    key = f"{PROJECT}:{APP_SECRETS_KEY}"
    if not isinstance(raw, Mapping):
        problems.note(key, "expected a mapping of environment variable names to secret strings "
                      "(" + SET_SECRET_COMMAND.format(name="NAME") + ")")
        return ()
    names = []
    for name in raw:
        if not _ENV_NAME.match(str(name)):
            problems.add(f"{key}.{name}", name, "an environment variable name (letters, digits, "
                         "'_', not starting with a digit)")
        elif name in MANAGED_ENV:
            problems.add(f"{key}.{name}", name, "a name the platform does not set itself (not "
                         f"{', '.join(sorted(MANAGED_ENV))})")
        elif app and name in app:
            problems.note(f"{key}.{name}", f"also set as a plain setting (ha-celery:app.{name}): "
                          "keep only the secret one")
        else:
            names.append(str(name))
    return tuple(sorted(names))


def _front_door(problems: Problems, raw: StackShape, platform: str | None,
                dns: DnsArgs | None, app_settings: Mapping[str, str], *, iap_secret_set: bool
                ) -> tuple[WebAccessArgs | None, EdgeArgs | None]:
    """``ha-celery:access`` and ``ha-celery:edge``: only where there is a public entry (a GCP
    stack with a domain). Without either section such a stack gets IAP with nobody allowed and
    the default edge: public reachability only by explicit config."""
    entry = platform == "gcp" and dns is not None
    for key, value in (("access", raw.access), ("edge", raw.edge)):
        if value is not None and not entry and platform is not None:
            why = ("the local stack has no load balancer; reach the app with `kubectl "
                   "port-forward svc/web 8000:80`" if platform == "local" else
                   "this stack has no public entry without ha-celery:dns")
            problems.note(f"{PROJECT}:{key}", f"only on GCP stacks with a domain: {why} (remove "
                          "it)")
    secret_key = f"{PROJECT}:{IAP_SECRET_KEY}"
    if not entry:
        if iap_secret_set:
            problems.note(secret_key, "set, but this stack has no IAP (remove it)")
        return None, None
    access, _ = _section(problems, "access", _ACCESS, raw.access, {})
    if access is not None and access.oauth_client_id and not iap_secret_set:
        problems.note(f"{PROJECT}:access.oauthClientId", "the custom OAuth client needs its "
                      f"secret: `pulumi config set --secret {secret_key} CLIENT_SECRET`")
    if access is not None and iap_secret_set and not access.oauth_client_id:
        problems.note(secret_key, "set, but ha-celery:access.oauthClientId is not: set the "
                      "client id too, or remove the secret to use Google's managed OAuth client")
    try:
        from app.settings import AppSettings, SettingsError

        chars = AppSettings.from_environ(app_settings).lcs_max_input_chars
    except SettingsError:  # reported with the app's own checks; a stand-in keeps going
        chars = AppSettings().lcs_max_input_chars
    edge, _ = _section(problems, "edge", _EDGE, raw.edge,
                       {"max_body_bytes": app_max_body_bytes(chars)})
    return access, edge


def build_workloads(raw: StackShape, stack: str, platform: str | None, gcp: GcpContext | None,
                    dns: DnsArgs | None, secret_names: tuple[str, ...],
                    problems: Problems, *, iap_secret_set: bool = False,
                    smtp_secret_set: bool = False
                    ) -> WorkloadConfig | None:
    """Every workload section as Args, or None if any problem was found (in them or before)."""
    from app.settings import QUEUES

    namespace = raw.namespace
    backup_raw = dict(raw.backup or {})
    image_raw, storage_raw = backup_raw.pop("image", None), backup_raw.pop("storage", None)
    app_image = pghoard_image = None
    if platform is not None:  # which image settings apply depends on the platform
        # The app image's context is the repository root (it installs from uv.lock); the
        # pghoard image's is its own directory (its Dockerfile copies the scripts next to it).
        app_image = _image(problems, "image", raw.image, gcp, context=".",
                           dockerfile="app/Dockerfile", image_name="app")
        pghoard_image = _image(problems, "backup.image", image_raw, gcp, context="pghoard",
                               dockerfile="pghoard/Dockerfile", image_name="pghoard",
                               repository_id="ha-celery-pghoard")
    runtime = problems.build(
        f"{PROJECT}:app", AppRuntimeArgs,
        fixed={"namespace": namespace, "image": PLACEHOLDER_IMAGE,
               "broker_url": PLACEHOLDER_SECRET, "database_url": PLACEHOLDER_SECRET,
               "secret_settings": {name: PLACEHOLDER_SECRET for name in secret_names},
               "settings": _app_settings(problems, raw.app)},
        names={"settings": "", "secret_settings": f"{PROJECT}:{APP_SECRETS_KEY}"})

    keda_raw = dict(raw.keda or {})
    keda_enabled = keda_raw.get("enabled", True)
    if not isinstance(keda_enabled, bool):
        problems.add(f"{PROJECT}:keda.enabled", keda_enabled, "true or false")
        keda_enabled = False
    keda = None
    if keda_enabled:
        keda, _ = _section(problems, "keda", _KEDA, keda_raw, {"watch_namespace": namespace})
    rabbitmq, _ = _section(problems, "rabbitmq", _RABBITMQ, raw.rabbitmq, {
        "namespace": namespace, "zones": gcp.zones if gcp else (), "protect": raw.protect,
        # KEDA's operator reads queue depth from the management API, from its own namespace,
        # with credentials it may only read there.
        "management_client_namespaces": (keda.namespace,) if keda else (),
        "queue_monitor_secret_namespace": keda.namespace if keda else None})
    postgres, _ = _section(problems, "postgres", _POSTGRES, raw.postgres,
                           {"namespace": namespace, "protect": raw.protect,
                            "zones": gcp.zones if gcp else ()},
                           # A regional disk by default where one exists: the database then
                           # survives the loss of its zone (dev may opt out for cost).
                           defaults={"regional_disk": gcp is not None})

    if gcp is not None:
        storage, _ = _section(problems, "backup.storage", _GCS_STORAGE, storage_raw,
                              {"project": gcp.project}, defaults={
                                  "location": gcp.region,
                                  "bucket_name": f"{gcp.project}-{stack}-pghoard",
                                  # Follows ha-celery:protect unless set on its own.
                                  "deletion_protection": raw.protect})
    elif platform == "local":
        storage, _ = _section(problems, "backup.storage", _LOCAL_STORAGE, storage_raw, {})
    else:
        storage = None
    backup, _ = _section(problems, "backup", _BACKUP, backup_raw, {
        "namespace": namespace, "image": PLACEHOLDER_IMAGE, "protect": raw.protect,
        # Stand-ins when storage or postgres failed (reported): backup's own keys still count.
        "storage": storage or LocalBackupStorage(),
        "database_host": "placeholder", "replication_user": "placeholder",
        "replication_password": "placeholder", "replication_slot": "placeholder",
        "postgres_major_version": (postgres or PostgresArgs(namespace=namespace)).major_version,
    })

    workers: dict[str, WorkerPoolArgs] = {}
    pools = raw.workers if raw.workers is not None else {queue: {} for queue in QUEUES}
    for queue in QUEUES:
        if queue not in pools:
            near = closest(queue, [name for name in pools if name not in QUEUES])
            problems.add(f"{PROJECT}:workers", sorted(pools),
                         f"a pool for every queue the app routes to ({', '.join(QUEUES)}); "
                         f"'{queue}' is missing, so its tasks would never run"
                         + (f" (is '{near}' meant to be '{queue}'?)" if near else ""))
    for queue, pool_raw in pools.items():
        if runtime is None:
            break
        pool, extras = _section(problems, f"workers.{queue}", _WORKER_POOL, pool_raw,
                                {"runtime": runtime, "queue": queue})
        prefix = f"{PROJECT}:workers.{queue}"
        if keda_enabled:
            scaling = problems.build(prefix, QueueAutoscalingArgs,
                                     fixed={"queue_monitor_secret_name": "placeholder"},
                                     settings=given(**{k: extras.get(k) for k in (
                                         "messages_per_replica", "polling_interval_seconds")}),
                                     names=_written(pool_raw))
        else:
            scaling = problems.build(prefix, CpuAutoscalingArgs, settings=given(
                target_cpu_utilization_percent=extras.get("target_cpu_utilization_percent")),
                names=_written(pool_raw))
        if pool is not None and scaling is not None:
            workers[queue] = problems.build(prefix, _replaced,
                                            fixed={"obj": pool, "autoscaling": scaling})

    ingress = None
    if dns is not None:
        ingress = problems.build(f"{PROJECT}:dns", WebIngressArgs, fixed={
            "domain": dns.domain.rstrip("."), "global_address_name": "placeholder"})
    web = flower = scheduler = sweeper = None
    if runtime is not None:
        web, _ = _section(problems, "web", _WEB, raw.web,
                          {"runtime": runtime, "ingress": ingress})
        flower, _ = _section(problems, "flower", _FLOWER, raw.flower, {"runtime": runtime})
        scheduler, _ = _section(problems, "scheduler", _SCHEDULER, raw.scheduler,
                                {"runtime": runtime})
        sweeper, _ = _section(problems, "sweeper", _SWEEPER, raw.sweeper, {"runtime": runtime})
    certificates, _ = _section(problems, "tls", _TLS, raw.tls, {})
    access, edge = _front_door(problems, raw, platform, dns,
                               runtime.settings if runtime is not None else {},
                               iap_secret_set=iap_secret_set)
    observability = _observability(problems, raw, platform, backup, tuple(pools),
                                   smtp_secret_set=smtp_secret_set)
    if problems:
        return None
    assert observability is not None
    return WorkloadConfig(observability=observability, access=access, edge=edge,
                          app_image=app_image, pghoard_image=pghoard_image, rabbitmq=rabbitmq,
                          postgres=postgres, backup=backup, workers=workers, keda=keda, web=web,
                          flower=flower, scheduler=scheduler, sweeper=sweeper,
                          certificates=certificates, app_secret_names=secret_names)


_LOCAL_ONLY = ("prometheusNamespace", "prometheusPodLabels")
_BACKUP_AGES = {
    # threshold key -> the backup setting it follows unless set on its own, and the factor to
    # seconds: the alert and the backup pod's readiness check then agree.
    "basebackupMaxAgeSeconds": ("max_basebackup_age_hours", 3600),
    "walMaxAgeSeconds": ("max_wal_age_minutes", 60),
}


def _observability(problems: Problems, raw: StackShape, platform: str | None,
                   backup: PgHoardBackupArgs | None, queues: tuple[str, ...], *,
                   smtp_secret_set: bool) -> ObservabilitySettings | None:
    """``ha-celery:observability``: the backup-age thresholds follow ``ha-celery:backup`` unless
    set here, queue limits must name a worker queue, and the local scraper only on local."""
    prefix = f"{PROJECT}:observability"
    section = raw.observability
    if isinstance(section, Mapping):
        section = dict(section)
        thresholds = section.get("thresholds")
        if backup is not None and (thresholds is None or isinstance(thresholds, Mapping)):
            thresholds = dict(thresholds or {})
            for key, (attribute, factor) in _BACKUP_AGES.items():
                thresholds.setdefault(key, int(getattr(backup, attribute) * factor))
            section["thresholds"] = thresholds
        if platform == "gcp":
            for key in _LOCAL_ONLY:
                if key in section:
                    problems.note(f"{prefix}.{key}", "only on the local stack: on GCP the "
                                  "metrics are scraped by GKE's managed collectors (remove it)")
                    section.pop(key)
    elif section is None and backup is not None:
        section = {"thresholds": {key: int(getattr(backup, attribute) * factor)
                                  for key, (attribute, factor) in _BACKUP_AGES.items()}}
    settings, _ = _section(problems, "observability", _OBSERVABILITY, section, {})
    secret_key = f"{PROJECT}:{SMTP_SECRET_KEY}"
    login = settings is not None and settings.smtp is not None and settings.smtp.username
    if login and not smtp_secret_set:
        problems.note(f"{prefix}.smtp.username", "the relay's login needs its password: "
                      f"`pulumi config set --secret {secret_key} PASSWORD`")
    if smtp_secret_set and settings is not None and not login:
        problems.note(secret_key, "set, but ha-celery:observability.smtp.username is not: set "
                      "the login too, or remove the password")
    if settings is None:
        return None
    for index, limit in enumerate(settings.thresholds.queue_limits):
        if limit.queue not in queues:
            near = closest(limit.queue, list(queues))
            problems.add(f"{prefix}.thresholds.queueLimits[{index}].queue", limit.queue,
                         f"one of the worker queues ({', '.join(queues)})"
                         + (f" (did you mean '{near}'?)" if near else ""))
    return settings


def _written(raw: Any) -> dict[str, str]:
    """snake_case field -> the key as the user wrote it, for one mapping."""
    return {snake(str(key)): str(key) for key in (raw or {})} if isinstance(raw, Mapping) else {}


def section_keys() -> dict[str, tuple[str, ...]]:
    """Every workload section and its keys as written, from the Args themselves. Nested
    mappings (a pool's ``resources``) appear as their own entry."""
    reference: dict[str, tuple[str, ...]] = {f"{PROJECT}:image": ("ref", "build")}
    for key, spec in _SECTIONS:
        names = (*spec.settable(), *spec.extra, *spec.nested)
        entry = f"{PROJECT}:{key}"
        reference[entry] = tuple(dict.fromkeys((*reference.get(entry, ()),
                                                *(to_camel(n) for n in names))))
        for name in spec.settable():
            nested = _field_type(spec.args, name)
            # `RestoreRequest | None`: the optional nested section is a section too.
            options = [a for a in typing.get_args(nested) if a is not type(None)]
            if len(options) == 1 and dataclasses.is_dataclass(options[0]):
                nested = options[0]
            if dataclasses.is_dataclass(nested):
                reference[f"{entry}.{to_camel(name)}"] = tuple(
                    to_camel(f.name) for f in dataclasses.fields(nested))
    return reference
