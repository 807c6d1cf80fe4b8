"""The RabbitMQ config generator, for every supported version (3.10 local drill .. 4.3 image)."""

from __future__ import annotations

import base64
import glob
import hashlib
import itertools
import json
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from infra import rabbitmq_config as config

VERSIONS = ["3.10.8", "3.13.7", "4.0.9", "4.1.4", "4.2.5", "4.3.4"]


def settings(version: str, **overrides) -> config.BrokerSettings:
    values = dict(
        version=config.RabbitMQVersion.parse(version),
        cluster_name="rabbitmq",
        peer_discovery=config.KubernetesPeerDiscovery(headless_service="rabbitmq-nodes",
                                                      namespace="ha-celery"),
        target_cluster_size=3,
        memory_high_watermark_bytes=1_288_490_188,
        disk_free_limit_bytes=2 * 2**30,
        definitions_path="/etc/rabbitmq/secret/definitions.json",
    )
    values.update(overrides)
    return config.BrokerSettings(**values)


def conf_keys(text: str) -> dict[str, str]:
    pairs = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


# ------------------------------------------------------------------------------- versions


def test_version_is_read_from_official_image_tags_with_or_without_digest():
    assert str(config.RabbitMQVersion.from_image("rabbitmq:4.3.4-management")) == "4.3.4"
    digest = "sha256:" + "a" * 64
    assert config.RabbitMQVersion.from_image(f"rabbitmq:3.13.7@{digest}").minor == 13


@pytest.mark.parametrize("image", ["rabbitmq", "rabbitmq:latest", "rabbitmq:management"])
def test_image_without_version_tag_is_refused_with_the_fix(image):
    with pytest.raises(ValueError, match="rabbitmq_version explicitly"):
        config.RabbitMQVersion.from_image(image)


@pytest.mark.parametrize("version", ["3.9.29", "5.0.0"])
def test_unsupported_versions_are_refused(version):
    with pytest.raises(ValueError, match="not supported"):
        settings(version)


# --------------------------------------------------------------------------- rabbitmq.conf


@pytest.mark.parametrize("version", VERSIONS)
def test_partition_handling_is_autoheal_until_4_3_then_absent(version):
    keys = conf_keys(config.rabbitmq_conf(settings(version)))
    if config.RabbitMQVersion.parse(version) < config.RabbitMQVersion(4, 3):
        assert keys["cluster_partition_handling"] == "autoheal"
    else:
        assert not any(key.startswith("cluster_partition_handling") for key in keys)
    paused = conf_keys(config.rabbitmq_conf(settings(version, partition_handling="pause_minority")))
    if config.has_partition_handling(config.RabbitMQVersion.parse(version)):
        assert paused["cluster_partition_handling"] == "pause_minority"


@pytest.mark.parametrize("version", VERSIONS)
def test_a_silent_peer_is_declared_down_after_ten_seconds_on_every_version(version):
    keys = conf_keys(config.rabbitmq_conf(settings(version)))
    assert keys["net_ticktime"] == "10"
    assert conf_keys(config.rabbitmq_conf(settings(version, net_ticktime_seconds=30)))[
        "net_ticktime"] == "30"


@pytest.mark.parametrize("version", VERSIONS)
def test_quorum_queues_grow_back_to_the_cluster_size_where_the_version_can(version):
    keys = conf_keys(config.rabbitmq_conf(settings(version, target_cluster_size=5)))
    prefix = "quorum_queue.continuous_membership_reconciliation."
    if config.RabbitMQVersion.parse(version) >= config.RabbitMQVersion(3, 13):
        assert keys[prefix + "enabled"] == "true"
        assert keys[prefix + "target_group_size"] == "5"
        assert keys[prefix + "auto_remove"] == "false"
    else:
        # 3.10 refuses to boot on unknown keys.
        assert not any(key.startswith(prefix) for key in keys)
    single = conf_keys(config.rabbitmq_conf(settings(version, target_cluster_size=1)))
    assert not any(key.startswith(prefix) for key in single)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"partition_handling": "ignore"}, "partition_handling: 'ignore' — use one of autoheal"),
        ({"net_ticktime_seconds": 2}, "net_ticktime_seconds: 2 — use a whole number of seconds"),
        ({"net_ticktime_seconds": 10.5}, "net_ticktime_seconds: 10.5"),
    ],
)
def test_bad_failure_detection_settings_are_refused_with_the_allowed_values(overrides, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        settings("3.10.8", **overrides)


@pytest.mark.parametrize("version", VERSIONS)
def test_quorum_is_the_node_default_queue_type_where_the_key_exists(version):
    keys = conf_keys(config.rabbitmq_conf(settings(version)))
    if config.RabbitMQVersion.parse(version) >= config.RabbitMQVersion(4, 0):
        assert keys["default_queue_type"] == "quorum"
    else:
        # 3.10 refuses to boot on unknown keys; the vhost default (definitions) covers it.
        assert "default_queue_type" not in keys


@pytest.mark.parametrize("version", VERSIONS)
def test_anonymous_login_and_network_guest_are_off(version):
    keys = conf_keys(config.rabbitmq_conf(settings(version)))
    mechanisms = {value for key, value in keys.items() if key.startswith("auth_mechanisms.")}
    assert mechanisms == {"PLAIN", "AMQPLAIN"}
    assert keys["loopback_users.guest"] == "true"
    if config.has_anonymous_login(config.RabbitMQVersion.parse(version)):
        assert keys["anonymous_login_user"] == "none"
    else:
        assert "anonymous_login_user" not in keys


@pytest.mark.parametrize("version", VERSIONS)
def test_kubernetes_discovery_keys_follow_the_plugin_generation(version):
    keys = conf_keys(config.rabbitmq_conf(settings(version)))
    assert keys["cluster_formation.peer_discovery_backend"] == "rabbit_peer_discovery_k8s"
    assert keys["cluster_formation.target_cluster_size_hint"] == "3"
    legacy = {k: v for k, v in keys.items() if k.startswith("cluster_formation.k8s.")}
    if config.RabbitMQVersion.parse(version) >= config.RabbitMQVersion(4, 1):
        assert legacy == {}
    else:
        assert legacy["cluster_formation.k8s.service_name"] == "rabbitmq-nodes"
        assert legacy["cluster_formation.k8s.address_type"] == "hostname"
        assert legacy["cluster_formation.k8s.hostname_suffix"] == ".rabbitmq-nodes.ha-celery"


@pytest.mark.parametrize("version", VERSIONS)
def test_memory_and_disk_limits_are_absolute_values(version):
    keys = conf_keys(config.rabbitmq_conf(settings(version)))
    assert keys["vm_memory_high_watermark.absolute"] == "1288490188"
    assert keys["disk_free_limit.absolute"] == str(2 * 2**30)
    assert not any(key.endswith(".relative") for key in keys)


def test_transient_nonexclusive_queues_are_permitted_only_where_4_3_forbids_them():
    assert "transient_nonexcl" not in config.rabbitmq_conf(settings("4.2.5"))
    assert conf_keys(config.rabbitmq_conf(settings("4.3.4")))[
        "deprecated_features.permit.transient_nonexcl_queues"] == "true"
    assert "transient_nonexcl" not in config.rabbitmq_conf(
        settings("4.3.4", permit_transient_nonexclusive_queues=False))


def test_classic_config_discovery_lists_every_local_node_and_skips_the_random_delay():
    local = settings("3.10.8", peer_discovery=config.ClassicConfigPeerDiscovery(
        nodes=("rmq1@localhost", "rmq2@localhost", "rmq3@localhost")),
        listeners=config.Listeners(amqp_port=5673, management_port=15673,
                                   prometheus_port=15693, bind_address="127.0.0.1"))
    keys = conf_keys(config.rabbitmq_conf(local))
    assert keys["cluster_formation.peer_discovery_backend"] == "classic_config"
    assert [keys[f"cluster_formation.classic_config.nodes.{i}"] for i in (1, 2, 3)] == [
        "rmq1@localhost", "rmq2@localhost", "rmq3@localhost"]
    assert keys["cluster_formation.randomized_startup_delay_range.max"] == "1"
    assert keys["listeners.tcp.default"] == "127.0.0.1:5673"
    assert keys["management.tcp.ip"] == "127.0.0.1"
    assert "rabbitmq_peer_discovery_k8s" not in config.enabled_plugins(local)


def test_plugins_are_management_prometheus_and_k8s_discovery():
    assert config.enabled_plugins(settings("4.3.4")) == (
        "[rabbitmq_management,rabbitmq_prometheus,rabbitmq_peer_discovery_k8s].\n")


TLS = config.BrokerTls(certificate_file="/etc/rabbitmq/tls/tls.crt",
                       key_file="/etc/rabbitmq/tls/tls.key", ca_file="/etc/rabbitmq/tls/ca.crt")


@pytest.mark.parametrize("version", VERSIONS)
def test_with_tls_clients_get_amqps_and_https_and_plain_listeners_stay_on_loopback(version):
    keys = conf_keys(config.rabbitmq_conf(settings(version, tls=TLS)))
    assert keys["listeners.ssl.default"] == "5671"
    assert keys["listeners.tcp.default"] == "127.0.0.1:5672"
    assert (keys["ssl_options.verify"], keys["ssl_options.fail_if_no_peer_cert"]) == (
        "verify_peer", "false")
    assert [keys["ssl_options.versions.1"], keys["ssl_options.versions.2"]] == [
        "tlsv1.3", "tlsv1.2"]
    assert not any("CBC" in v or "RSA-AES" in v for k, v in keys.items() if ".ciphers." in k)
    assert keys["management.ssl.port"] == "15671" and keys["prometheus.ssl.port"] == "15691"
    assert keys["management.tcp.ip"] == keys["prometheus.tcp.ip"] == "127.0.0.1"
    for prefix in ("ssl_options", "management.ssl", "prometheus.ssl"):
        assert keys[f"{prefix}.certfile"] == TLS.certificate_file
        assert keys[f"{prefix}.cacertfile"] == TLS.ca_file


def test_without_a_loopback_listener_plain_amqp_is_off():
    tls = config.BrokerTls(certificate_file="/t/c", key_file="/t/k", ca_file="/t/ca",
                           loopback_plain_amqp=False)
    keys = conf_keys(config.rabbitmq_conf(settings("3.10.8", tls=tls)))
    assert keys["listeners.tcp"] == "none" and "listeners.tcp.default" not in keys


def test_inter_node_tls_verifies_both_ends_and_the_cli_tools_use_it_too():
    optfile = config.inter_node_tls_config(TLS)
    server, client = optfile.split("{client,")
    assert "{verify, verify_peer}" in server and "{fail_if_no_peer_cert, true}" in server
    assert "{verify, verify_peer}" in client and '"/etc/rabbitmq/tls/ca.crt"' in client
    assert "['tlsv1.3', 'tlsv1.2']" in optfile
    env = config.rabbitmq_env_conf(TLS, "/etc/rabbitmq/config/inter_node_tls.config")
    flags = "-proto_dist inet_tls -ssl_dist_optfile /etc/rabbitmq/config/inter_node_tls.config"
    assert f'SERVER_ADDITIONAL_ERL_ARGS="{flags}"' in env and f'CTL_ERL_ARGS="{flags}"' in env
    assert "proto_dist" not in config.rabbitmq_env_conf(None, "/x")


@pytest.mark.parametrize("field,value", [
    ("certificate_file", "relative.crt"), ("key_file", "/etc/x y.key"),
    ("ca_file", '/etc/"ca".crt'), ("amqps_port", 0),
])
def test_bad_tls_settings_name_the_field(field, value):
    values = dict(certificate_file="/c", key_file="/k", ca_file="/ca")
    values[field] = value
    with pytest.raises(ValueError, match=f"BrokerTls.{field}"):
        config.BrokerTls(**values)


def _installed_schema_patterns() -> list[re.Pattern]:
    patterns = []
    for schema in glob.glob("/usr/lib/rabbitmq/lib/rabbitmq_server-*/plugins/*/priv/schema/*"):
        for key in re.findall(r'\{mapping,\s*"([^"]+)"', Path(schema).read_text()):
            patterns.append(re.compile("^" + re.sub(r"\\\$\w+", r"[^.]+", re.escape(key)) + "$"))
    return patterns


def test_every_key_for_the_installed_version_is_in_its_schema():
    """3.10 refuses to boot on an unknown key: check against the schema files on this machine."""
    patterns = _installed_schema_patterns()
    if not patterns:
        pytest.skip("rabbitmq-server is not installed (scripts/prereq.d/20-rabbitmq-drill.sh)")
    installed = sorted(glob.glob("/usr/lib/rabbitmq/lib/rabbitmq_server-*"))[-1].rsplit("-", 1)[1]
    discoveries = (config.KubernetesPeerDiscovery(headless_service="r", namespace="n"),
                   config.ClassicConfigPeerDiscovery(nodes=("a@localhost",)))
    for discovery, tls in itertools.product(discoveries, (None, TLS)):
        keys = conf_keys(config.rabbitmq_conf(settings(installed, peer_discovery=discovery,
                                                       tls=tls)))
        unknown = [key for key in keys if not any(p.match(key) for p in patterns)]
        assert unknown == [], f"keys RabbitMQ {installed} does not know: {unknown}"


@pytest.mark.parametrize("field,value", [
    ("target_cluster_size", 0), ("memory_high_watermark_bytes", 1000),
    ("disk_free_limit_bytes", 10), ("definitions_path", "relative.json"),
])
def test_bad_settings_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        settings("4.3.4", **{field: value})


def test_default_user_snippet_refuses_values_that_would_inject_config():
    assert config.default_user_conf("admin", "s3cret") == (
        "default_user = admin\ndefault_pass = s3cret\n")
    with pytest.raises(ValueError, match="newlines"):
        config.default_user_conf("admin", "x\nloopback_users = none")


# ----------------------------------------------------------------------------- definitions


def make_definitions(version: str = "3.10.8", **overrides) -> dict:
    values = dict(version=config.RabbitMQVersion.parse(version), vhost="celery",
                  admin_username="admin", admin_password="admin-pw",
                  app_username="celery", app_password="app-pw",
                  poison=config.PoisonMessagePolicy(delivery_limit=7))
    values.update(overrides)
    return config.definitions(**values)


@pytest.mark.parametrize("version", VERSIONS)
def test_vhost_defaults_to_quorum_queues_in_every_version(version):
    [vhost] = make_definitions(version)["vhosts"]
    assert vhost["name"] == "celery"
    assert vhost["metadata"]["default_queue_type"] == "quorum"


def test_password_hash_is_rabbitmq_sha256_format_and_no_plain_password_is_stored():
    document = make_definitions()
    text = json.dumps(document)
    assert "admin-pw" not in text and "app-pw" not in text
    app = next(user for user in document["users"] if user["name"] == "celery")
    raw = base64.b64decode(app["password_hash"])
    salt, digest = raw[:4], raw[4:]
    assert digest == hashlib.sha256(salt + b"app-pw").digest()
    assert app["hashing_algorithm"] == "rabbit_password_hashing_sha256"
    assert app["tags"] == []


def test_monitor_user_only_reads_and_has_the_monitoring_tag():
    document = make_definitions(monitor_username="queue-monitor", monitor_password="m-pw")
    tags = {user["name"]: user["tags"] for user in document["users"]}
    assert tags["queue-monitor"] == ["monitoring"]
    [permission] = [p for p in document["permissions"] if p["user"] == "queue-monitor"]
    assert (permission["configure"], permission["write"], permission["read"]) == ("^$", "^$", ".*")
    with pytest.raises(ValueError, match="must differ"):
        make_definitions(monitor_username="admin", monitor_password="m-pw")


def test_password_hash_is_stable_for_the_same_credentials():
    assert make_definitions()["users"] == make_definitions()["users"]
    assert make_definitions()["users"] != make_definitions(app_password="other")["users"]


def test_only_admin_is_an_administrator_and_both_users_get_the_vhost():
    document = make_definitions()
    tags = {user["name"]: user["tags"] for user in document["users"]}
    assert tags == {"admin": ["administrator"], "celery": []}
    assert {(p["user"], p["vhost"]) for p in document["permissions"]} == {
        ("admin", "celery"), ("celery", "celery")}
    assert "guest" not in tags


@pytest.mark.parametrize("version,target", [("3.10.8", "queues"), ("3.13.7", "quorum_queues"),
                                            ("4.3.4", "quorum_queues")])
def test_poison_policy_targets_quorum_queues_where_the_version_can_say_so(version, target):
    [policy] = make_definitions(version)["policies"]
    assert policy["apply-to"] == target


def test_poison_policy_dead_letters_after_the_delivery_limit_at_least_once():
    document = make_definitions()
    [policy] = document["policies"]
    assert policy["definition"] == {
        "delivery-limit": 7, "dead-letter-exchange": "dead-letter",
        "dead-letter-strategy": "at-least-once", "overflow": "reject-publish"}
    pattern = re.compile(policy["pattern"])
    assert pattern.match("celery") and pattern.match("large")
    assert not pattern.match("dead-letter")  # no dead-letter loop
    [queue] = document["queues"]
    assert queue["arguments"] == {"x-queue-type": "quorum"}
    [binding] = document["bindings"]
    assert (binding["source"], binding["destination"]) == ("dead-letter", "dead-letter")


@pytest.mark.parametrize("limit", [0, 5000])
def test_delivery_limit_out_of_range_is_refused(limit):
    with pytest.raises(ValueError, match="delivery_limit"):
        config.PoisonMessagePolicy(delivery_limit=limit)


# ------------------------------------------------------------------------------- scripts


def fake_tool(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text("#!/bin/bash\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def pod(tmp_path):
    """A fake pod filesystem with fake RabbitMQ tools, for running the generated scripts."""
    paths = config.ContainerPaths(
        config_dir=str(tmp_path / "config"), secret_dir=str(tmp_path / "secret"),
        cookie_dir=str(tmp_path / "cookie"), confd_dir=str(tmp_path / "conf.d"),
        data_dir=str(tmp_path / "data"))
    for directory in (paths.config_dir, paths.secret_dir, paths.cookie_dir, paths.confd_dir,
                      paths.data_dir, str(tmp_path / "bin")):
        Path(directory).mkdir()
    Path(paths.config_dir, "rabbitmq.conf").write_text("cluster_name = x\n")
    Path(paths.secret_dir, "default_user.conf").write_text("default_user = admin\n")
    Path(paths.cookie_dir, "cookie").write_text("COOKIE")
    fake_tool(tmp_path / "bin", "rabbitmq-server", 'echo started > "$HOME/server-started"')
    return tmp_path, paths


PEER_2 = "rabbit@rabbitmq-2.rabbitmq-nodes.ha-celery"


def run_entrypoint(tmp_path, paths, *, running_peer: str | None, pod_name: str,
                   node_data: bool, version: str = "4.3.4"):
    node = f"rabbit@{pod_name}.rabbitmq-nodes.ha-celery"
    if node_data:
        Path(paths.data_dir, "mnesia", node).mkdir(parents=True)
        Path(paths.data_dir, "mnesia", node, "cluster_nodes.config").write_text("x")
    # Fake CLI: only the named peer answers check_running.
    fake_tool(tmp_path / "bin", "rabbitmq-diagnostics",
              f'[ "$4" = "{running_peer or "-"}" ] && exit 0; exit 69')
    script = config.entrypoint_script(
        version=config.RabbitMQVersion.parse(version), statefulset="rabbitmq",
        headless_service="rabbitmq-nodes", namespace="ha-celery", replicas=3,
        file_descriptor_limit=4096, paths=paths)
    env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "HOME": paths.data_dir,
           "MY_POD_NAME": pod_name, "RABBITMQ_NODENAME": node}
    result = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return Path(paths.confd_dir, "90-seed-node.conf")


def test_entrypoint_assembles_conf_d_and_installs_an_owner_only_cookie(pod):
    tmp_path, paths = pod
    run_entrypoint(tmp_path, paths, running_peer=None, pod_name="rabbitmq-1", node_data=False)
    assert sorted(os.listdir(paths.confd_dir)) == ["10-rabbitmq.conf", "20-default-user.conf"]
    cookie = Path(paths.data_dir, ".erlang.cookie")
    assert cookie.read_text() == "COOKIE"
    assert stat.S_IMODE(cookie.stat().st_mode) == 0o400
    assert Path(paths.data_dir, "server-started").exists()


def test_blank_pod_zero_joins_a_running_cluster_instead_of_forming_a_new_one(pod):
    tmp_path, paths = pod
    seed = run_entrypoint(tmp_path, paths, running_peer=PEER_2, pod_name="rabbitmq-0",
                          node_data=False)
    assert seed.read_text().strip() == f"cluster_formation.k8s.seed_node = {PEER_2}"


def test_pod_zero_forms_the_cluster_when_no_peer_runs_yet(pod):
    tmp_path, paths = pod
    assert not run_entrypoint(tmp_path, paths, running_peer=None, pod_name="rabbitmq-0",
                              node_data=False).exists()


def test_pod_zero_with_data_never_changes_its_seed(pod):
    tmp_path, paths = pod
    assert not run_entrypoint(tmp_path, paths, running_peer=PEER_2, pod_name="rabbitmq-0",
                              node_data=True).exists()


def test_seed_guard_is_only_generated_for_seed_node_discovery():
    older = config.entrypoint_script(version=config.RabbitMQVersion(4, 0), statefulset="r",
                                     headless_service="h", namespace="n", replicas=3,
                                     file_descriptor_limit=65536)
    assert "seed_node" not in older and "exec rabbitmq-server" in older


def test_entrypoint_raises_the_file_descriptor_limit():
    script = config.entrypoint_script(version=config.RabbitMQVersion(4, 3), statefulset="r",
                                      headless_service="h", namespace="n", replicas=3,
                                      file_descriptor_limit=65536)
    assert "wanted=65536" in script and 'ulimit -n "$wanted"' in script


@pytest.mark.parametrize("members,passes", [(1, False), (2, False), (3, True)])
def test_startup_check_passes_only_in_a_cluster_of_the_planned_size(tmp_path, members, passes):
    fake_tool(tmp_path, "rabbitmq-diagnostics", "exit 0")
    fake_tool(tmp_path, "rabbitmqctl", f"echo {members}")
    script = config.startup_check_script(version=config.RabbitMQVersion(4, 3), expected_members=3)
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                            env={"PATH": f"{tmp_path}:/usr/bin:/bin"}, timeout=30)
    assert (result.returncode == 0) is passes


def test_startup_check_fails_when_the_node_is_not_running(tmp_path):
    fake_tool(tmp_path, "rabbitmq-diagnostics", "exit 69")
    fake_tool(tmp_path, "rabbitmqctl", "echo 3")
    script = config.startup_check_script(version=config.RabbitMQVersion(4, 3), expected_members=3)
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                            env={"PATH": f"{tmp_path}:/usr/bin:/bin"}, timeout=30)
    assert result.returncode != 0


@pytest.mark.parametrize("version,expression", [
    ("3.10.8", "rabbit_mnesia:cluster_nodes(all)"), ("4.3.4", "rabbit_nodes:list_members()")])
def test_startup_check_uses_the_membership_call_of_its_version(version, expression):
    script = config.startup_check_script(version=config.RabbitMQVersion.parse(version),
                                         expected_members=3)
    assert expression in script


def test_prestop_waits_for_quorum_plus_one_then_drains_both_bounded():
    script = config.prestop_script(quorum_wait_seconds=300, drain_timeout_seconds=120)
    wait, drain = script.splitlines()
    assert wait.startswith("rabbitmq-upgrade await_online_quorum_plus_one -t 300")
    assert drain.startswith("rabbitmq-upgrade drain -t 120")
