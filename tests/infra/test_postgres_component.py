"""PostgresDatabase under per-test Pulumi mocks: the resource graph and its outputs."""

from __future__ import annotations

import pulumi
import pytest

from infra import postgres as pg


class Mocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: dict[str, pulumi.runtime.MockResourceArgs] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.resources[args.name] = args
        outputs = dict(args.inputs)
        if args.typ == "random:index/randomPassword:RandomPassword":
            outputs["result"] = f"Generated{args.name.replace('-', '')}1"
        return [f"{args.name}-id", outputs]

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


SECRET_SIG = "4dabf18193072939515e22adb298388d"  # Pulumi's marker for a secret value


def unwrap_secret(value):
    """The value inside Pulumi's secret wrapper; fails if it was not marked secret."""
    assert isinstance(value, dict) and SECRET_SIG in value, f"not a secret: {value!r}"
    return value["value"]


@pytest.fixture
def mocks() -> Mocks:
    recorded = Mocks()
    pulumi.runtime.set_mocks(recorded, preview=False)
    return recorded


CREATED: list[pulumi.Resource] = []


def capture(args: pulumi.ResourceTransformationArgs):
    CREATED.append(args.resource)


def make() -> pg.PostgresDatabase:
    """The component; its children inherit the capturing transformation."""
    CREATED.clear()
    return pg.PostgresDatabase(
        "db",
        pg.PostgresArgs(namespace="ha-celery", memory_mib=1024),
        pulumi.ResourceOptions(transformations=[capture]),
    )


def settled(*outputs: pulumi.Output) -> pulumi.Output:
    """The outputs, resolved only after every child was registered with the mocks."""
    return pulumi.Output.all(*[r.urn for r in CREATED], *outputs).apply(
        lambda values: values[len(CREATED) :]
    )


@pulumi.runtime.test
def test_database_url_is_secret_and_lives_in_a_secret_referenced_by_name(mocks):
    database = make()

    def check(values):
        url, secret_name, is_secret = values
        assert url.startswith("postgresql://hacelery:Generateddbapppassword1@")
        assert "@db.ha-celery.svc.cluster.local:5432/hacelery" in url
        assert secret_name == "db-app-url"
        assert is_secret
        stored = unwrap_secret(mocks.resources["db-app-url"].inputs["stringData"])
        assert stored == {pg.DATABASE_URL_KEY: url}

    return settled(
        database.database_url,
        database.database_url_secret_name,
        pulumi.Output.is_secret(database.database_url),
    ).apply(check)


@pulumi.runtime.test
def test_four_generated_passwords_never_enter_the_statefulset(mocks):
    database = make()

    def check(_):
        passwords = [
            r
            for r in mocks.resources.values()
            if r.typ == "random:index/randomPassword:RandomPassword"
        ]
        assert len(passwords) == 4
        assert all(p.inputs["special"] is False and p.inputs["length"] >= 32 for p in passwords)
        credentials = unwrap_secret(mocks.resources["db-credentials"].inputs["stringData"])
        # The monitoring role's exists even without the exporter: switching monitoring on or
        # off never generates a new credential.
        assert set(credentials) == {"superuser-password", "app-password", "backup-password",
                                    "monitor-password"}
        statefulset = str(mocks.resources["db-statefulset"].inputs)
        for value in credentials.values():
            assert value not in statefulset

    return settled(database.service_name).apply(check)


@pulumi.runtime.test
def test_children_are_parented_and_named_after_the_component(mocks):
    database = make()
    children = [resource for resource in CREATED if resource is not database]

    def check(urns):
        types = {r.typ for r in mocks.resources.values()}
        assert types >= {
            "kubernetes:apps/v1:StatefulSet",
            "kubernetes:core/v1:Service",
            "kubernetes:networking.k8s.io/v1:NetworkPolicy",
            "kubernetes:core/v1:ConfigMap",
            "kubernetes:core/v1:Secret",
        }
        assert mocks.resources["db"].typ == "hacelery:postgres:PostgresDatabase"
        assert len(urns) == len(mocks.resources) - 1
        for urn in urns:
            assert "hacelery:postgres:PostgresDatabase$" in urn, urn
            assert urn.rsplit("::", 1)[1].startswith("db-"), urn

    return pulumi.Output.all(*[child.urn for child in children]).apply(check)


@pulumi.runtime.test
def test_backup_outputs_hand_the_replication_role_to_the_backup(mocks):
    database = make()

    def check(values):
        user, password, slot, is_secret = values
        assert user == "pghoard" and slot == "pghoard"
        assert password == "Generateddbbackuppassword1"
        assert is_secret

    return settled(
        database.backup_user,
        database.backup_password,
        database.replication_slot,
        pulumi.Output.is_secret(database.backup_password),
    ).apply(check)
