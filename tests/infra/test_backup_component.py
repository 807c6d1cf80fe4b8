"""PgHoardBackup under per-test Pulumi mocks: GCP resources, IAM scope, Workload Identity."""

from __future__ import annotations

import json

import pulumi
import pytest

from infra import backup as bk

SECRET_SIG = "4dabf18193072939515e22adb298388d"  # Pulumi's marker for a secret value
IMAGE = "europe-docker.pkg.dev/p/ha-celery/pghoard:2.7.0-1"
PUBLIC = "-----BEGIN PUBLIC KEY-----\nMIIBmock\n-----END PUBLIC KEY-----\n"
PRIVATE = "-----BEGIN RSA PRIVATE KEY-----\nmock\n-----END RSA PRIVATE KEY-----\n"


def unwrap_secret(value):
    assert isinstance(value, dict) and SECRET_SIG in value, f"not a secret: {value!r}"
    return value["value"]


class Mocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: dict[str, pulumi.runtime.MockResourceArgs] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.resources[args.name] = args
        outputs = dict(args.inputs)
        if args.typ == "tls:index/privateKey:PrivateKey":
            outputs.update(public_key_pem=PUBLIC, private_key_pem=PRIVATE)
        if args.typ == "gcp:serviceaccount/account:Account":
            email = f"{args.inputs['accountId']}@{args.inputs['project']}.iam.gserviceaccount.com"
            outputs.update(
                email=email, name=f"projects/{args.inputs['project']}/serviceAccounts/{email}"
            )
        return [f"{args.name}-id", outputs]

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


@pytest.fixture
def mocks() -> Mocks:
    recorded = Mocks()
    pulumi.runtime.set_mocks(recorded, preview=False)
    return recorded


CREATED: list[pulumi.Resource] = []


def capture(args: pulumi.ResourceTransformationArgs):
    CREATED.append(args.resource)


def make(storage, **changes) -> bk.PgHoardBackup:
    CREATED.clear()
    return bk.PgHoardBackup(
        "pghoard",
        bk.PgHoardBackupArgs(
            namespace="ha-celery",
            image=IMAGE,
            storage=storage,
            database_host="db.ha-celery.svc.cluster.local",
            replication_user="pghoard",
            replication_password=pulumi.Output.secret("ReplicationPassword1"),
            **changes,
        ),
        pulumi.ResourceOptions(transformations=[capture]),
    )


def settled(*outputs: pulumi.Output) -> pulumi.Output:
    return pulumi.Output.all(*[r.urn for r in CREATED], *outputs).apply(
        lambda values: values[len(CREATED) :]
    )


GCS = bk.GcsBackupStorage(
    project="my-project", location="EU", bucket_name="my-pg-backups", deletion_protection=False
)


def of_type(mocks: Mocks, typ: str) -> list[pulumi.runtime.MockResourceArgs]:
    return [r for r in mocks.resources.values() if r.typ == typ]


@pulumi.runtime.test
def test_bucket_iam_is_granted_on_the_bucket_to_pghoards_account_only(mocks):
    backup = make(GCS)

    def check(values):
        (email,) = values
        members = of_type(mocks, "gcp:storage/bucketIAMMember:BucketIAMMember")
        assert {m.inputs["role"] for m in members} == set(bk.BUCKET_ROLES)
        assert all(m.inputs["bucket"] == "my-pg-backups" for m in members)
        assert all(m.inputs["member"] == f"serviceAccount:{email}" for m in members)
        assert not of_type(mocks, "gcp:projects/iAMMember:IAMMember")
        assert not of_type(mocks, "gcp:projects/iAMBinding:IAMBinding")
        assert not of_type(mocks, "gcp:serviceaccount/key:Key")

    return settled(backup.google_service_account_email).apply(check)


@pulumi.runtime.test
def test_workload_identity_binds_the_kubernetes_service_account(mocks):
    backup = make(GCS)

    def check(values):
        (email,) = values
        (binding,) = of_type(mocks, "gcp:serviceaccount/iAMMember:IAMMember")
        assert binding.inputs["role"] == "roles/iam.workloadIdentityUser"
        assert (
            binding.inputs["member"] == "serviceAccount:my-project.svc.id.goog[ha-celery/pghoard]"
        )
        (ksa,) = of_type(mocks, "kubernetes:core/v1:ServiceAccount")
        assert ksa.inputs["metadata"]["name"] == "pghoard"
        assert ksa.inputs["metadata"]["annotations"] == {bk.WORKLOAD_IDENTITY_ANNOTATION: email}
        deployment = mocks.resources["pghoard-deployment"].inputs
        assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "pghoard"

    return settled(backup.google_service_account_email).apply(check)


@pulumi.runtime.test
def test_config_secret_is_secret_with_the_public_key_and_no_credentials(mocks):
    backup = make(GCS)

    def check(_):
        config = json.loads(
            unwrap_secret(mocks.resources["pghoard-config"].inputs["stringData"])["pghoard.json"]
        )
        site = config["backup_sites"]["hacelery"]
        assert site["nodes"][0]["password"] == "ReplicationPassword1"
        assert site["encryption_keys"] == {"platform-1": {"public": PUBLIC}}
        assert site["object_storage"]["bucket_name"] == "my-pg-backups"
        assert "credential_file" not in site["object_storage"]
        # The private key is nowhere in the cluster while no restore is requested.
        assert "pghoard-restore-key" not in mocks.resources
        everything = json.dumps([r.inputs for r in mocks.resources.values()
                                 if r.typ.startswith("kubernetes:")], default=str)
        assert "PRIVATE KEY" not in everything
        deployment = json.dumps(mocks.resources["pghoard-deployment"].inputs)
        assert "ReplicationPassword1" not in deployment

    return settled(backup.config_secret_name).apply(check)


@pulumi.runtime.test
def test_a_requested_restore_brings_the_key_a_volume_and_a_job(mocks):
    from infra.backup_restore import RestoreRequest

    backup = make(GCS, restore=RestoreRequest(run_id="r1"), database_volume_gib=30)

    def check(_):
        restore_key = unwrap_secret(mocks.resources["pghoard-restore-key"].inputs["stringData"])
        assert restore_key == {bk.RESTORE_KEY_FILE: PRIVATE}
        claim = mocks.resources["pghoard-restore-r1"].inputs
        assert claim["spec"]["resources"]["requests"]["storage"] == "30Gi"
        job = mocks.resources["pghoard-restore-r1-job"].inputs
        pod = job["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == "pghoard"  # Workload Identity to read the bucket
        mounted = {v["name"]: v for v in pod["volumes"]}
        assert mounted["restore-key"]["secret"]["secretName"] == "pghoard-restore-key"
        assert mounted["target"]["persistentVolumeClaim"]["claimName"] == "pghoard-restore-r1"
        assert "PRIVATE KEY" not in json.dumps(job)

    return settled(backup.restore_key_secret_name).apply(check)


@pulumi.runtime.test
def test_bucket_has_the_protections(mocks):
    backup = make(GCS)

    def check(_):
        (bucket,) = of_type(mocks, "gcp:storage/bucket:Bucket")
        assert bucket.inputs["uniformBucketLevelAccess"] is True
        assert bucket.inputs["publicAccessPrevention"] == "enforced"
        assert bucket.inputs["versioning"] == {"enabled": True}
        # Protection off (GCS fixture) no longer empties the bucket on delete: only
        # delete_with_stack does.
        assert bucket.inputs["forceDestroy"] is False
        assert "retentionPolicy" not in bucket.inputs

    return settled(backup.bucket_name).apply(check)


@pulumi.runtime.test
def test_local_storage_creates_no_gcp_resource_at_all(mocks):
    backup = make(bk.LocalBackupStorage(storage_size_gib=5))

    def check(_):
        assert not [r for r in mocks.resources.values() if r.typ.startswith("gcp:")]
        (claim,) = of_type(mocks, "kubernetes:core/v1:PersistentVolumeClaim")
        assert claim.inputs["spec"]["resources"]["requests"] == {"storage": "5Gi"}
        (ksa,) = of_type(mocks, "kubernetes:core/v1:ServiceAccount")
        assert not ksa.inputs["metadata"].get("annotations")

    return settled(backup.deployment_name).apply(check)


@pulumi.runtime.test
def test_children_are_parented_and_named_after_the_component(mocks):
    backup = make(GCS)
    children = [resource for resource in CREATED if resource is not backup]

    def check(urns):
        assert mocks.resources["pghoard"].typ == "hacelery:backup:PgHoardBackup"
        for urn in urns:
            assert "hacelery:backup:PgHoardBackup$" in urn, urn
            assert urn.rsplit("::", 1)[1].startswith("pghoard-"), urn

    return pulumi.Output.all(*[child.urn for child in children]).apply(check)
