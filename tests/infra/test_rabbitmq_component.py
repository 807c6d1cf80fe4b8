"""RabbitMQCluster under per-test Pulumi mocks: resource set, parenting, provider, secrets."""

from __future__ import annotations

import json

import pulumi
import pulumi_kubernetes as k8s
import pytest
from pulumi.runtime import mocks as pulumi_mocks

from infra.rabbitmq import BROKER_URL_KEY, RabbitMQCluster, RabbitMQClusterArgs

COMPONENT_TYPE = "hacelery:rabbitmq:RabbitMQCluster"
# Recognisable generated values, so a test can look for them anywhere they must not be.
GENERATED = {
    "rabbitmq-erlang-cookie": "Cookie0Value0Never0In0Plain",
    "rabbitmq-admin-password": "Admin0Password0Never0In0Plain",
    "rabbitmq-app-password": "App0Password0Never0In0Plain",
    "rabbitmq-monitor-password": "Monitor0Password0Never0In0Plain",
}


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[pulumi_mocks.MockResourceArgs] = []

    def new_resource(self, args: pulumi_mocks.MockResourceArgs):
        self.resources.append(args)
        outputs = dict(args.inputs)
        if args.typ == "random:index/randomPassword:RandomPassword":
            outputs["result"] = GENERATED[args.name]
        metadata = outputs.get("metadata")
        if isinstance(metadata, dict) and "name" not in metadata:
            outputs["metadata"] = {**metadata, "name": f"{args.name}-generated"}
        return f"{args.name}-id", outputs

    def call(self, args: pulumi_mocks.MockCallArgs):
        return {}

    def by_type(self, typ: str) -> list[pulumi_mocks.MockResourceArgs]:
        return [resource for resource in self.resources if resource.typ == typ]


@pytest.fixture
def mocks(monkeypatch):
    recording = RecordingMocks()
    urns: list[str] = []
    original = pulumi_mocks.MockMonitor.make_urn

    def make_urn(self, parent, type_, name):
        urn = original(self, parent, type_, name)
        urns.append(urn)
        return urn

    monkeypatch.setattr(pulumi_mocks.MockMonitor, "make_urn", make_urn)
    pulumi.runtime.set_mocks(recording, preview=False)
    recording.urns = urns
    yield recording


def build() -> RabbitMQCluster:
    provider = k8s.Provider("test-cluster")
    return RabbitMQCluster(
        "rabbitmq", RabbitMQClusterArgs(namespace="ha-celery", zones=("z-a", "z-b", "z-c")),
        opts=pulumi.ResourceOptions(provider=provider))


EXPECTED_CHILDREN = {
    ("random:index/randomPassword:RandomPassword", "rabbitmq-erlang-cookie"),
    ("random:index/randomPassword:RandomPassword", "rabbitmq-admin-password"),
    ("random:index/randomPassword:RandomPassword", "rabbitmq-app-password"),
    ("random:index/randomPassword:RandomPassword", "rabbitmq-monitor-password"),
    ("kubernetes:core/v1:Secret", "rabbitmq-queue-monitor"),
    ("kubernetes:core/v1:Secret", "rabbitmq-erlang-cookie"),
    ("kubernetes:core/v1:Secret", "rabbitmq-server-config"),
    ("kubernetes:core/v1:Secret", "rabbitmq-admin"),
    ("kubernetes:core/v1:Secret", "rabbitmq-broker"),
    ("kubernetes:core/v1:ConfigMap", "rabbitmq-config"),
    ("kubernetes:core/v1:ServiceAccount", "rabbitmq-service-account"),
    ("kubernetes:rbac.authorization.k8s.io/v1:Role", "rabbitmq-peer-discovery"),
    ("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding", "rabbitmq-peer-discovery-binding"),
    ("kubernetes:core/v1:Service", "rabbitmq-headless"),
    ("kubernetes:core/v1:Service", "rabbitmq-client"),
    ("kubernetes:apps/v1:StatefulSet", "rabbitmq-statefulset"),
    ("kubernetes:policy/v1:PodDisruptionBudget", "rabbitmq-pdb"),
    ("kubernetes:networking.k8s.io/v1:NetworkPolicy", "rabbitmq-network-policy"),
    # One claim per node (3 replicas), adopted by the StatefulSet.
    ("kubernetes:core/v1:PersistentVolumeClaim", "rabbitmq-data-0"),
    ("kubernetes:core/v1:PersistentVolumeClaim", "rabbitmq-data-1"),
    ("kubernetes:core/v1:PersistentVolumeClaim", "rabbitmq-data-2"),
}


@pulumi.runtime.test
def test_component_creates_exactly_the_expected_resources(mocks):
    cluster = build()

    def check(_):
        created = {(r.typ, r.name) for r in mocks.resources
                   if r.typ not in ("pulumi:providers:kubernetes", COMPONENT_TYPE)}
        assert created == EXPECTED_CHILDREN
        assert [r.name for r in mocks.by_type(COMPONENT_TYPE)] == ["rabbitmq"]

    return cluster.statefulset_name.apply(check)


@pulumi.runtime.test
def test_every_child_is_parented_to_the_component_and_uses_its_provider(mocks):
    cluster = build()

    def check(_):
        children = [urn for urn in mocks.urns if f"{COMPONENT_TYPE}$" in urn]
        assert len(children) == len(EXPECTED_CHILDREN)
        component_urns = [urn for urn in mocks.urns if urn.endswith(f"{COMPONENT_TYPE}::rabbitmq")]
        assert len(component_urns) == 1
        for resource in mocks.resources:
            if resource.typ.startswith("kubernetes:") and resource.custom:
                assert resource.provider and "test-cluster" in resource.provider, resource.name

    return cluster.statefulset_name.apply(check)


SECRET_SIGNATURE = "4dabf18193072939515e22adb298388d"  # Pulumi's marker for a secret value


def unwrap(value):
    """An input as the provider would receive it, without Pulumi's secret wrapper."""
    if isinstance(value, dict) and SECRET_SIGNATURE in value:
        return unwrap(value["value"])
    return value


def unwrap_all(data):
    data = unwrap(data)
    return {key: unwrap(value) for key, value in data.items()}


def _plain_inputs(resource) -> str:
    return json.dumps(resource.inputs, default=str)


@pulumi.runtime.test
def test_no_secret_value_appears_in_configmap_statefulset_or_services(mocks):
    cluster = build()

    def check(_):
        public_types = ("kubernetes:core/v1:ConfigMap", "kubernetes:apps/v1:StatefulSet",
                        "kubernetes:core/v1:Service", "kubernetes:core/v1:ServiceAccount",
                        "kubernetes:policy/v1:PodDisruptionBudget",
                        "kubernetes:networking.k8s.io/v1:NetworkPolicy")
        public = [r for r in mocks.resources if r.typ in public_types]
        assert len(public) == 7
        for resource in public:
            text = _plain_inputs(resource)
            for value in GENERATED.values():
                assert value not in text, f"{value} leaked into {resource.typ} {resource.name}"

    return cluster.statefulset_name.apply(check)


@pulumi.runtime.test
def test_broker_url_is_a_secret_output_and_lives_in_the_broker_secret(mocks):
    cluster = build()

    def check(args):
        url, is_secret, secret_name = args
        assert is_secret
        assert url.count(";") == 2 and "App0Password0Never0In0Plain" in url
        [broker] = [r for r in mocks.by_type("kubernetes:core/v1:Secret")
                    if r.name == "rabbitmq-broker"]
        assert unwrap_all(broker.inputs["stringData"]) == {BROKER_URL_KEY: url}
        assert secret_name == "rabbitmq-broker"

    return pulumi.Output.all(cluster.broker_url, pulumi.Output.is_secret(cluster.broker_url),
                             cluster.broker_secret_name).apply(check)


@pulumi.runtime.test
def test_generated_credentials_end_up_only_in_secrets(mocks):
    cluster = build()

    def check(_):
        secrets = {r.name: unwrap_all(r.inputs["stringData"]) for r in
                   mocks.by_type("kubernetes:core/v1:Secret")}
        assert secrets["rabbitmq-erlang-cookie"] == {"cookie": GENERATED["rabbitmq-erlang-cookie"]}
        assert secrets["rabbitmq-admin"] == {
            "username": "admin", "password": GENERATED["rabbitmq-admin-password"]}
        server = secrets["rabbitmq-server-config"]
        assert GENERATED["rabbitmq-admin-password"] in server["default_user.conf"]
        definitions = json.loads(server["definitions.json"])
        assert {user["name"] for user in definitions["users"]} == {
            "admin", "celery", "queue-monitor"}
        monitor_url = secrets["rabbitmq-queue-monitor"]["host"]
        assert monitor_url.startswith("http://queue-monitor:Monitor0Password0Never0In0Plain@")
        for resource in mocks.by_type("random:index/randomPassword:RandomPassword"):
            assert resource.inputs["special"] is False
            assert resource.inputs["length"] >= 32

    return cluster.statefulset_name.apply(check)


@pulumi.runtime.test
def test_outputs_name_the_services_and_the_admin_secret(mocks):
    cluster = build()

    def check(args):
        assert args == ["rabbitmq", "rabbitmq-nodes", "rabbitmq-admin", "rabbitmq",
                        "rabbitmq-queue-monitor"]

    return pulumi.Output.all(cluster.client_service_name, cluster.headless_service_name,
                             cluster.admin_secret_name, cluster.statefulset_name,
                             cluster.queue_monitor_secret_name).apply(check)


def test_every_rabbitmq_object_is_schema_valid_restricted_and_resourced():
    """Through the offline plan engine: strict OpenAPI schema, Pod Security `restricted`, the
    resources policy. Catches a misspelt field that the typed Args would still accept."""
    from stacks import plan as plan_engine

    def program() -> None:
        RabbitMQCluster("rabbitmq", RabbitMQClusterArgs(namespace="ha-celery",
                                                         zones=("z-a", "z-b", "z-c")))

    plan = plan_engine.run_program(program)
    manifests = [plan_engine.to_manifest(r) for r in plan.resources
                 if plan_engine.is_kubernetes_object(r)]
    kinds = sorted(m["kind"] for m in manifests)
    assert kinds == sorted(["ConfigMap", "NetworkPolicy", "PodDisruptionBudget", "Role",
                            "RoleBinding", "Secret", "Secret", "Secret", "Secret", "Secret",
                            "Service",
                            "Service", "ServiceAccount", "StatefulSet",
                            *["PersistentVolumeClaim"] * 3])
    for manifest in manifests:
        if manifest["kind"] == "Secret":
            # Every value redacted in the plan output; only the key names remain reviewable.
            assert set(manifest["stringData"].values()) == {plan_engine.SECRET}
    assert plan_engine.validate_manifests(manifests, plan.kubernetes_version) == []
