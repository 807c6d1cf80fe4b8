"""PgHoardBackup's pure builders: bucket, IAM scope, Deployment, throttles, probes, config."""

from __future__ import annotations

import json

import pytest

from infra import backup as bk
from infra import names
from infra.validation import ArgsError

IMAGE = "europe-docker.pkg.dev/p/ha-celery/pghoard:2.7.0-1"
PUBLIC = "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n"


def gcs(**overrides) -> bk.GcsBackupStorage:
    values = {"project": "my-project", "location": "EU", "bucket_name": "my-project-pg-backups"}
    values.update(overrides)
    return bk.GcsBackupStorage(**values)


def args(**overrides) -> bk.PgHoardBackupArgs:
    values = {
        "namespace": "ha-celery",
        "image": IMAGE,
        "storage": gcs(),
        "database_host": "db.ha-celery.svc.cluster.local",
        "replication_user": "pghoard",
        "replication_password": "pw",
    }
    values.update(overrides)
    return bk.PgHoardBackupArgs(**values)


def config(a=None) -> dict:
    return json.loads(
        bk.config_text(
            a or args(),
            host="db",
            user="pghoard",
            password="pw",
            slot="pghoard",
            public_key_pem=PUBLIC,
        )
    )


def test_bucket_is_private_uniform_versioned_and_cleans_up_after_pghoard():
    bucket = bk.bucket_args(gcs())
    assert bucket.uniform_bucket_level_access is True
    assert bucket.public_access_prevention == "enforced"
    assert bucket.versioning.enabled is True
    actions = {rule.action.type for rule in bucket.lifecycle_rules}
    assert actions == {"Delete", "AbortIncompleteMultipartUpload"}
    delete = next(r for r in bucket.lifecycle_rules if r.action.type == "Delete")
    # Only noncurrent (already deleted by pghoard) objects expire: live backups never do.
    assert delete.condition.with_state == "ARCHIVED"
    assert delete.condition.days_since_noncurrent_time == 14


def test_bucket_has_no_retention_lock_that_would_block_pghoards_own_deletion():
    bucket = bk.bucket_args(gcs())
    assert bucket.retention_policy is None
    assert bucket.soft_delete_policy.retention_duration_seconds > 0


def test_only_a_bucket_meant_to_go_with_the_stack_is_emptied_on_delete():
    assert bk.bucket_args(gcs(delete_with_stack=True)).force_destroy is True
    assert bk.bucket_args(gcs()).force_destroy is False
    # Turning protection off must not make a destroy delete the backups.
    assert bk.bucket_args(gcs(deletion_protection=False)).force_destroy is False


def test_bucket_roles_are_bucket_scoped_object_roles_only():
    assert set(bk.BUCKET_ROLES) == {"roles/storage.objectUser", "roles/storage.legacyBucketReader"}
    assert not any(
        role in ("roles/storage.admin", "roles/owner", "roles/editor") for role in bk.BUCKET_ROLES
    )


def test_workload_identity_member_names_the_namespace_and_service_account():
    assert (
        bk.workload_identity_member("my-project", "ha-celery", "pghoard")
        == "serviceAccount:my-project.svc.id.goog[ha-celery/pghoard]"
    )


def test_deployment_is_one_replica_recreated_never_rolled():
    spec = bk.deployment_spec("pghoard", args())
    assert spec.replicas == 1
    assert spec.strategy.type == "Recreate"
    assert spec.template.spec.service_account_name == "pghoard"


def test_pghoard_is_cpu_and_memory_limited():
    resources = bk.pghoard_container(args(cpu_millicores=800, memory_mib=768)).resources
    assert resources.limits == {"cpu": "800m", "memory": "768Mi"}
    assert resources.requests["memory"] == resources.limits["memory"]


def test_base_backup_is_rate_limited_and_threads_are_bounded():
    wrapper = bk.support_files(args(basebackup_max_rate_mib=16))["pg_basebackup_throttled"]
    assert "--max-rate=16384k" in wrapper
    cfg = config()
    site = cfg["backup_sites"]["hacelery"]
    assert site["pg_basebackup_path"] == f"{bk.WRAPPER_DIR}/pg_basebackup_throttled"
    assert cfg["compression"]["thread_count"] == 1
    assert cfg["transfer"]["thread_count"] <= 2
    assert site["basebackup_threads"] == 1
    assert site["basebackup_chunks_in_progress"] <= 2


def test_config_uses_workload_identity_and_no_key_file():
    cfg = config()
    storage = cfg["backup_sites"]["hacelery"]["object_storage"]
    assert storage == {
        "storage_type": "google",
        "project_id": "my-project",
        "bucket_name": "my-project-pg-backups",
    }
    assert "credential" not in json.dumps(cfg)
    volumes = bk.pod_spec("pghoard", args()).volumes
    assert not any(v.secret and "key" in v.secret.secret_name for v in volumes)


def test_daemon_never_mounts_the_private_key():
    pod = bk.pod_spec("pghoard", args())
    secrets = [v.secret.secret_name for v in pod.volumes if v.secret]
    assert secrets == ["pghoard-config"]
    assert "PRIVATE KEY" not in json.dumps(config())


def test_local_storage_uses_a_pvc_and_pghoards_local_driver():
    local = args(storage=bk.LocalBackupStorage(storage_size_gib=5))
    storage = config(local)["backup_sites"]["hacelery"]["object_storage"]
    assert storage == {"storage_type": "local", "directory": bk.LOCAL_STORAGE_DIR}
    pod = bk.pod_spec("pghoard", local)
    claims = [
        v.persistent_volume_claim.claim_name for v in pod.volumes if v.persistent_volume_claim
    ]
    assert claims == ["pghoard-backups"]


def test_readiness_fails_on_stale_backups_and_liveness_only_on_a_dead_api():
    c = bk.pghoard_container(args(max_basebackup_age_hours=30, max_wal_age_minutes=45))
    readiness = c.readiness_probe.exec_.command
    assert readiness[0] == bk.CHECK_COMMAND
    assert readiness[readiness.index("--max-basebackup-age-hours") + 1] == "30"
    assert readiness[readiness.index("--max-wal-age-minutes") + 1] == "45"
    assert "--liveness" in c.liveness_probe.exec_.command


def test_pod_runs_restricted_without_an_api_token():
    pod = bk.pod_spec("pghoard", args())
    assert pod.security_context.run_as_user == 999
    assert pod.automount_service_account_token is False
    sc = pod.containers[0].security_context
    assert sc.read_only_root_filesystem is True and sc.allow_privilege_escalation is False


def test_nothing_may_connect_to_pghoard_and_postgres_admits_it():
    policy = bk.network_policy_spec("pghoard", args())
    assert policy.policy_types == ["Ingress", "Egress"] and policy.ingress == []
    labels = bk.deployment_spec("pghoard", args()).template.metadata.labels
    for key, value in names.platform_pod_selector().items():
        assert labels[key] == value


def test_pghoard_sends_to_google_apis_only_with_a_bucket():
    from infra.network_policy import GKE_METADATA_SERVER, GOOGLE_APIS, KUBE_DNS

    database = pg_peer()
    gcs = bk.backup_egress(args(database_peer=database))
    assert gcs == (KUBE_DNS, database, GOOGLE_APIS, GKE_METADATA_SERVER)
    local = bk.backup_egress(args(storage=bk.LocalBackupStorage(), database_peer=database))
    assert local == (KUBE_DNS, database)


def pg_peer():
    import infra.postgres as pg

    return pg.client_peer("postgres")


def test_pg_version_matches_the_server_major():
    files = bk.support_files(args(postgres_major_version=16))
    assert files["PG_VERSION"].strip() == "16"
    assert "/usr/lib/postgresql/16/bin/pg_basebackup" in files["pg_basebackup_throttled"]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"image": "pghoard:latest"}, "PgHoardBackupArgs.image"),
        ({"max_basebackup_age_hours": 12}, "PgHoardBackupArgs.max_basebackup_age_hours"),
        ({"cpu_millicores": 10}, "PgHoardBackupArgs.cpu_millicores"),
        ({"storage": "gcs"}, "PgHoardBackupArgs.storage"),
        ({"postgres_major_version": 9}, "PgHoardBackupArgs.postgres_major_version"),
    ],
)
def test_bad_args_name_the_field(overrides, field):
    with pytest.raises(ArgsError, match=field):
        args(**overrides)


def test_bad_storage_args_name_the_field():
    with pytest.raises(ArgsError, match=r"GcsBackupStorage\.project"):
        gcs(project="X")
    with pytest.raises(ArgsError, match=r"LocalBackupStorage\.storage_size_gib"):
        bk.LocalBackupStorage(storage_size_gib=0)


def test_who_reads_or_deletes_backups_is_audited_with_the_callers_identity():
    audit = bk.storage_audit_config_args(gcs())
    assert audit.project == "my-project" and audit.service == "storage.googleapis.com"
    assert {c.log_type for c in audit.audit_log_configs} == {
        "ADMIN_READ", "DATA_READ", "DATA_WRITE"}
