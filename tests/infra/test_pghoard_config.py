"""pghoard.json and the throttled pg_basebackup wrapper, from typed settings."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from infra import pghoard_config as hc

PUBLIC = "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n"
PATHS = hc.PgHoardPaths(
    backup_location="/w/scratch",
    alert_file_dir="/w",
    json_state_file_path="/w/state.json",
    maintenance_mode_file="/w/maintenance",
    pg_data_directory="/pgv",
    pg_bin_directory="/usr/lib/postgresql/17/bin",
    pg_basebackup_path="/b/pg_basebackup_throttled",
)
NODE = hc.ReplicationNode(
    host="db.ns.svc.cluster.local",
    port=5432,
    user="pghoard",
    password="s3cretPassw0rd",
    slot="pghoard",
)


def config(storage=None, **settings) -> dict:
    return hc.pghoard_config(
        hc.PgHoardSettings(**settings),
        storage=storage or hc.GoogleStorage(project_id="my-project", bucket_name="my-backups"),
        node=NODE,
        paths=PATHS,
        public_key_pem=PUBLIC,
    )


def site(cfg: dict) -> dict:
    (only,) = cfg["backup_sites"].values()
    return only


def config_with_node(node: hc.ReplicationNode) -> dict:
    """The one replication node entry of a config built for ``node``."""
    built = hc.pghoard_config(
        hc.PgHoardSettings(),
        storage=hc.GoogleStorage(project_id="my-project", bucket_name="my-backups"),
        node=node,
        paths=PATHS,
        public_key_pem=PUBLIC,
    )
    (entry,) = site(built)["nodes"]
    return entry


def test_google_storage_carries_no_credentials_so_workload_identity_is_used():
    storage = site(config())["object_storage"]
    assert storage == {
        "storage_type": "google",
        "project_id": "my-project",
        "bucket_name": "my-backups",
    }
    text = hc.render(config())
    for forbidden in ("credential", "private_key", "client_email", "aws_", "account_key"):
        assert forbidden not in text


def test_daemon_config_holds_the_public_key_only():
    keys = site(config())["encryption_keys"]
    assert keys == {hc.ENCRYPTION_KEY_ID: {"public": PUBLIC}}
    assert site(config())["encryption_key_id"] == hc.ENCRYPTION_KEY_ID
    assert "PRIVATE KEY" not in hc.render(config())


def test_a_private_key_in_place_of_the_public_one_is_refused():
    with pytest.raises(ValueError, match="public_key_pem"):
        hc.pghoard_config(
            hc.PgHoardSettings(),
            storage=hc.LocalStorage(directory="/b"),
            node=NODE,
            paths=PATHS,
            public_key_pem="-----BEGIN RSA PRIVATE KEY-----\n",
        )


def test_user_and_password_stay_separate_keys_of_the_node():
    (node,) = site(config())["nodes"]
    assert node["user"] == "pghoard"
    assert node["password"] == "s3cretPassw0rd"
    assert node["slot"] == "pghoard"


def test_wal_is_streamed_over_the_slot_and_backups_follow_the_schedule():
    cfg = site(config(basebackup_interval_hours=12, basebackup_count=6))
    assert cfg["active_backup_mode"] == "pg_receivexlog"
    assert cfg["basebackup_interval_hours"] == 12
    assert cfg["basebackup_count"] == 6
    assert cfg["basebackup_mode"] in hc.BASEBACKUP_MODES


def test_throttles_bound_threads_chunks_and_compression():
    cfg = config(compression_threads=1, transfer_threads=2, basebackup_chunks_in_progress=2)
    assert cfg["compression"]["thread_count"] == 1
    assert cfg["transfer"]["thread_count"] == 2
    assert site(cfg)["basebackup_threads"] == 1
    assert site(cfg)["basebackup_chunks_in_progress"] == 2
    assert cfg["compression"]["algorithm"] == "zstd"


def test_api_listens_on_loopback_and_every_path_is_explicit():
    cfg = config()
    assert cfg["http_address"] == "127.0.0.1"
    assert cfg["backup_location"] == PATHS.backup_location
    assert cfg["alert_file_dir"] == PATHS.alert_file_dir
    assert cfg["json_state_file_path"] == PATHS.json_state_file_path
    assert cfg["maintenance_mode_file"] == PATHS.maintenance_mode_file
    assert site(cfg)["pg_basebackup_path"] == PATHS.pg_basebackup_path


def test_local_storage_swaps_only_the_storage_block():
    google, local = config(), config(storage=hc.LocalStorage(directory="/backups"))
    assert site(local)["object_storage"] == {"storage_type": "local", "directory": "/backups"}
    site(google).pop("object_storage")
    site(local).pop("object_storage")
    assert google == local


def test_render_is_stable_json():
    assert hc.render(config()) == hc.render(config())
    assert json.loads(hc.render(config())) == config()


def test_wrapper_rate_limits_pg_basebackup_and_keeps_the_checkpoint_spread():
    script = hc.basebackup_wrapper_script(
        pg_basebackup="/usr/bin/pg_basebackup", max_rate_kib=32768
    )
    assert "--max-rate=32768k" in script
    assert "--checkpoint=spread" in script
    assert "exec /usr/bin/pg_basebackup --version" in script
    fast = hc.basebackup_wrapper_script(pg_basebackup="/x", max_rate_kib=64, fast_checkpoint=True)
    assert "--checkpoint=fast" in fast


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("site", "Bad Site"),
        ("basebackup_interval_hours", 0),
        ("basebackup_count", 1),
        ("basebackup_mode", "local-tar"),
        ("basebackup_max_rate_kib", 1),
        ("compression_algorithm", "gzip"),
        ("transfer_threads", 50),
        ("http_port", 80),
    ],
)
def test_bad_settings_name_the_field_and_the_value(field, value):
    with pytest.raises(
        ValueError,
        match=re.escape(f"PgHoardSettings.{field}: {value!r}")
        if isinstance(value, str)
        else re.escape(f"PgHoardSettings.{field}: {value}"),
    ):
        hc.PgHoardSettings(**{field: value})


def test_bucket_names_and_local_paths_are_checked():
    with pytest.raises(ValueError, match="bucket_name"):
        hc.GoogleStorage(project_id="p", bucket_name="UPPER_case!")
    with pytest.raises(ValueError, match="absolute"):
        hc.LocalStorage(directory="relative/dir")


def test_with_the_stack_ca_the_wal_stream_verifies_the_server() -> None:
    node = dataclasses.replace(NODE, ca_file="/tls/ca.crt", hostaddr="10.0.0.5")
    site = config_with_node(node)
    assert site["sslmode"] == "verify-full" and site["sslrootcert"] == "/tls/ca.crt"
    assert site["hostaddr"] == "10.0.0.5"


def test_without_a_ca_libpq_only_prefers_tls() -> None:
    site = config_with_node(NODE)
    assert site["sslmode"] == "prefer" and "sslrootcert" not in site
