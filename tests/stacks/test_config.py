"""Stack config parsing: good values become Args, bad ones name the key, the value and the fix."""

from __future__ import annotations

import pytest

from stacks import plan as plan_engine
from stacks.config import ConfigError, parse

GCP = {
    "gcp_project": "ha-celery-test",
    "gcp_region": "europe-west1",
    "zones": ["europe-west1-b", "europe-west1-c", "europe-west1-d"],
}


def problems_of(values: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(values, "test")
    return caught.value.problems


def test_minimal_gcp_stack_gets_component_defaults():
    config = parse(GCP, "test")
    assert config.on_gcp
    assert config.gke.release_channel == "REGULAR"
    assert config.gke.deletion_protection is True  # safe by default; dev opts out
    assert [pool.name for pool in config.gke.node_pools] == ["general"]
    assert config.dns is None


def test_settings_left_out_are_not_passed_so_args_defaults_apply():
    config = parse(
        {**GCP, "cluster": {"nodePools": [{"name": "big", "machineType": "n2-standard-8"}]}}, "test"
    )
    pool = config.gke.node_pools[0]
    assert (pool.name, pool.machine_type, pool.min_nodes_per_zone) == ("big", "n2-standard-8", 1)


def test_malformed_region_names_gcp_region():
    [problem] = problems_of({**GCP, "gcp_region": "europe-west", "zones": ["europe-west-b"]})
    assert problem.startswith("gcp:region: got 'europe-west'")
    assert "europe-west1" in problem


def test_negative_node_count_names_the_pool_key():
    [problem] = problems_of(
        {**GCP, "cluster": {"nodePools": [{"name": "general", "minNodesPerZone": -1}]}}
    )
    assert problem.startswith("ha-celery:cluster.nodePools[0].minNodesPerZone: got -1")


def test_max_below_min_nodes_is_refused():
    [problem] = problems_of(
        {
            **GCP,
            "cluster": {
                "nodePools": [{"name": "general", "minNodesPerZone": 3, "maxNodesPerZone": 2}]
            },
        }
    )
    assert "maxNodesPerZone" in problem and "at least minNodesPerZone (3)" in problem


def test_record_outside_the_zone_names_the_record_key():
    [problem] = problems_of(
        {
            **GCP,
            "dns": {
                "domain": "celery.example.com.",
                "records": [{"name": "www.example.org.", "type": "A", "rrdatas": ["192.0.2.1"]}],
            },
        }
    )
    assert problem.startswith("ha-celery:dns.records[0].name: got 'www.example.org.'")
    assert "inside the zone 'celery.example.com.'" in problem


def test_domain_without_trailing_dot_is_refused_with_the_fix():
    [problem] = problems_of({**GCP, "dns": {"domain": "celery.example.com"}})
    assert problem.startswith("ha-celery:dns.domain")
    assert "ending with a dot" in problem


def test_zone_of_another_region_is_refused():
    [problem] = problems_of({**GCP, "zones": ["us-central1-a"]})
    assert problem.startswith("ha-celery:zones: got 'us-central1-a'")


def test_overlapping_ranges_are_refused():
    [problem] = problems_of({**GCP, "cluster": {"podsCidr": "10.10.0.0/16"}})
    assert "podsCidr" in problem and "does not overlap" in problem


def test_unknown_keys_are_reported_not_ignored():
    [problem] = problems_of({**GCP, "cluster": {"releaseChanel": "STABLE"}})
    assert problem.startswith("ha-celery:cluster.releaseChanel: unknown setting")


def test_every_problem_is_reported_in_one_run():
    problems = problems_of(
        {**GCP, "kubernetesVersion": "1.99", "cluster": {"releaseChannel": "FAST"}}
    )
    assert len(problems) == 2
    assert any(p.startswith("ha-celery:cluster.releaseChannel: got 'FAST'") for p in problems)


def test_bad_kubernetes_version_lists_supported_ones():
    [problem] = problems_of({**GCP, "kubernetesVersion": "1.99"})
    assert problem.startswith("ha-celery:kubernetesVersion: got '1.99'") and "1.33" in problem


def test_gcp_stack_requires_project_region_and_zones():
    problems = problems_of({"platform": "gcp"})
    assert {p.split(":", 2)[0] + ":" + p.split(":", 2)[1] for p in problems} == {
        "gcp:project",
        "gcp:region",
        "ha-celery:zones",
    }


LOCAL = {
    "platform": "local",
    "image": {"ref": "ha-celery/app:1.0"},
    "backup": {"image": {"ref": "ha-celery/pghoard:1.0"}},
}


def test_local_stack_refuses_gcp_settings():
    [problem] = problems_of({**LOCAL, "dns": {"domain": "a.example."}})
    assert problem.startswith("ha-celery:dns") and "local stack creates no GCP" in problem


def test_local_stack_takes_the_kube_context():
    config = parse({**LOCAL, "local": {"kubeContext": "kind-x"}}, "local")
    assert (config.on_gcp, config.gke, config.kube_context) == (False, None, "kind-x")


def test_config_errors_stop_the_plan_before_any_resource(monkeypatch):
    from stacks import platform

    built = []
    monkeypatch.setattr(platform, "build", lambda config: built.append(config) or {})
    with pytest.raises(ConfigError) as caught:
        plan_engine.evaluate("prod", overrides={"gcp:region": "europe-west"})
    assert built == []
    assert "gcp:region" in str(caught.value)


def test_unknown_top_level_key_in_stack_file_is_reported():
    with pytest.raises(ConfigError) as caught:
        plan_engine.evaluate("dev", overrides={"ha-celery:clustr": {}})
    assert caught.value.problems[0].startswith("ha-celery:clustr: unknown setting")


# --- workload sections ------------------------------------------------------------------------


def test_gcp_stack_builds_images_by_default_and_local_needs_pinned_refs():
    config = parse(GCP, "test")
    assert config.workloads.app_image.build.dockerfile_path == "app/Dockerfile"
    assert config.workloads.pghoard_image.build.dockerfile_path == "pghoard/Dockerfile"
    problems = problems_of({"platform": "local"})
    assert [p.split(":")[1] for p in problems] == ["image.ref", "backup.image.ref"]


def test_every_app_queue_gets_a_worker_pool_by_default():
    config = parse(GCP, "test")
    assert sorted(config.workloads.workers) == ["default", "large", "small"]


def test_a_queue_without_a_pool_is_refused():
    problems = problems_of({**GCP, "workers": {"small": {}, "large": {}}})
    assert problems == [
        "ha-celery:workers: got ['large', 'small']; expected a pool for every queue the app "
        "routes to (default, small, large); 'default' is missing, so its tasks would never run"
    ]


def test_worker_settings_are_checked_against_the_pool_args():
    problems = problems_of(
        {**GCP, "workers": {"default": {}, "large": {}, "small": {"concurency": 4}}}
    )
    assert problems[0].startswith(
        "ha-celery:workers.small.concurency: unknown setting; did you mean 'concurrency'? "
        "(allowed: allowedEgress, concurrency,"
    )


def test_nested_worker_resources_are_validated():
    [problem] = problems_of(
        {
            **GCP,
            "workers": {
                "default": {},
                "large": {},
                "small": {"resources": {"memoryRequest": "2Gi", "memoryLimit": "1Gi"}},
            },
        }
    )
    assert problem == (
        "ha-celery:workers.small.resources.memoryLimit: got '1Gi'; expected a quantity >= "
        "memoryRequest (2Gi)"
    )


def test_even_rabbitmq_replica_count_is_refused():
    [problem] = problems_of({**GCP, "rabbitmq": {"replicas": 4}})
    assert problem == "ha-celery:rabbitmq.replicas: got 4; expected an odd number: 1, 3, 5 or 7"


def test_wrong_types_are_named_with_their_key():
    [problem] = problems_of({**GCP, "postgres": {"memoryMib": "lots"}})
    assert problem == "ha-celery:postgres.memoryMib: got 'lots'; expected a whole number"


def test_keda_on_by_default_scales_on_queue_depth_and_off_falls_back_to_cpu():
    from infra.celery import CpuAutoscalingArgs, QueueAutoscalingArgs

    on = parse(GCP, "test").workloads
    assert all(isinstance(p.autoscaling, QueueAutoscalingArgs) for p in on.workers.values())
    assert on.rabbitmq.management_client_namespaces == ("keda",)
    off = parse({**GCP, "keda": {"enabled": False}}, "test").workloads
    assert off.keda is None
    assert all(isinstance(p.autoscaling, CpuAutoscalingArgs) for p in off.workers.values())


def test_messages_per_replica_reaches_the_scaler():
    config = parse(
        {**GCP, "workers": {"default": {}, "large": {}, "small": {"messagesPerReplica": 40}}},
        "test",
    )
    assert config.workloads.workers["small"].autoscaling.messages_per_replica == 40


def test_protection_is_one_switch_on_by_default():
    prod = parse(GCP, "prod")
    assert prod.protect is True
    assert prod.gke.protect is True and prod.gke.deletion_protection is True
    assert prod.dns is None or prod.dns.protect is True
    workloads = prod.workloads
    assert workloads.rabbitmq.protect and workloads.postgres.protect and workloads.backup.protect
    assert workloads.backup.storage.deletion_protection is True
    # ... and never deletes backups with the stack unless asked to.
    assert workloads.backup.storage.delete_with_stack is False

    dev = parse({**GCP, "protect": False, "dns": {"domain": "example.com."}}, "dev")
    assert (dev.protect, dev.gke.protect, dev.gke.deletion_protection, dev.dns.protect) == (
        False, False, False, False)
    assert not (dev.workloads.rabbitmq.protect or dev.workloads.postgres.protect
                or dev.workloads.backup.protect)
    assert dev.workloads.backup.storage.deletion_protection is False
    assert dev.workloads.backup.storage.bucket_name == "ha-celery-test-dev-pghoard"


def test_the_clusters_own_deletion_protection_may_differ_from_protect():
    config = parse({**GCP, "protect": False, "cluster": {"deletionProtection": True}}, "x")
    assert config.gke.deletion_protection is True and config.gke.protect is False


def test_backups_are_deleted_with_the_stack_only_when_asked():
    config = parse({**GCP, "backup": {"storage": {"deleteWithStack": True}}}, "dev")
    assert config.workloads.backup.storage.delete_with_stack is True
    [problem] = problems_of({**GCP, "backup": {"storage": {"deleteWithStack": "sometimes"}}})
    assert problem.startswith("ha-celery:backup.storage.deleteWithStack: got 'sometimes'")


def test_protect_must_be_a_boolean():
    [problem] = problems_of({**GCP, "protect": "perhaps"})
    assert problem.startswith("ha-celery:protect: got 'perhaps'; expected true or false")


def test_app_settings_accept_yaml_numbers_and_refuse_credentials():
    config = parse({**GCP, "app": {"LCS_LARGE_THRESHOLD": 5000}}, "test")
    assert config.workloads.web.runtime.settings == {"LCS_LARGE_THRESHOLD": "5000"}
    [problem] = problems_of({**GCP, "app": {"EXTRA_URL": "postgresql://u:hunter2@db/x"}})
    assert problem.startswith("ha-celery:app.EXTRA_URL: refused as a credential")
    assert "hunter2" not in problem


def test_app_secrets_names_are_validated_and_values_stay_secret():
    from pulumi.runtime import rpc

    plan = plan_engine.evaluate("dev", overrides={
        "ha-celery:appSecrets": {"API_TOKEN": {"secure": "v1:abc"}}})
    [secret] = [r for r in plan.resources if r.type == "kubernetes:core/v1:Secret"
                and r.name == "app-secrets-secret"]
    assert rpc.is_rpc_secret(secret.inputs["stringData"])
    with pytest.raises(ConfigError) as caught:
        plan_engine.evaluate("dev", overrides={"ha-celery:appSecrets": {"bad-name": "x"}})
    assert caught.value.problems == [
        "ha-celery:appSecrets.bad-name: got 'bad-name'; expected an environment variable name "
        "(letters, digits, '_', not starting with a digit)"
    ]


def test_app_secrets_must_be_a_mapping():
    with pytest.raises(ConfigError) as caught:
        plan_engine.evaluate("dev", overrides={"ha-celery:appSecrets": ["x"]})
    assert caught.value.problems[0].startswith("ha-celery:appSecrets: expected a mapping")


# --- every mistake at once, each under its key as written -------------------------------------


def test_a_stack_file_with_four_independent_mistakes_reports_four():
    problems = problems_of({
        **GCP,
        "cluster": {"releaseChannel": "FAST"},
        "rabbitmq": {"replicas": 4},
        "postgres": {"memoryMib": "lots"},
        "workers": {"default": {}, "large": {}, "small": {"concurency": 4}},
    })
    assert [p.split(":", 2)[1] for p in problems] == [
        "cluster.releaseChannel", "rabbitmq.replicas", "postgres.memoryMib",
        "workers.small.concurency"]


def test_mistakes_in_one_section_and_in_sections_that_depend_on_it_are_all_reported():
    # A bad region used to stop the run before the node pool and the workloads were looked at.
    problems = problems_of({
        **GCP, "gcp_region": "europe-west", "zones": ["europe-west-b"],
        "cluster": {"nodePools": [{"name": "general", "minNodesPerZone": -1, "diskSizeGb": 5}]},
        "postgres": {"memoryMib": 1},
    })
    assert problems == [
        "gcp:region: got 'europe-west'; expected a GCP region such as 'europe-west1' or "
        "'us-central1'",
        "ha-celery:cluster.nodePools[0].minNodesPerZone: got -1; expected a whole number >= 0",
        "ha-celery:cluster.nodePools[0].diskSizeGb: got 5; expected at least 20 (GB)",
        "ha-celery:postgres.memoryMib: got 1; expected 256-262144 MiB",
    ]


def test_a_default_standing_in_for_a_bad_value_is_never_blamed():
    # max (2) is refused against min (5); the retry that drops max must not then report min
    # against max's default (3): min is fine once the user fixes max.
    [problem] = problems_of(
        {**GCP, "cluster": {"nodePools": [
            {"name": "general", "minNodesPerZone": 5, "maxNodesPerZone": 2}]}})
    assert problem.startswith("ha-celery:cluster.nodePools[0].maxNodesPerZone: got 2")


@pytest.mark.parametrize(("written", "meant"), [
    ("clustr", "ha-celery:cluster"), ("kubernetes_version", "ha-celery:kubernetesVersion"),
    ("wokers", "ha-celery:workers"), ("AppSecrets", "ha-celery:appSecrets")])
def test_a_misspelled_top_level_key_is_named_with_a_suggestion(written, meant):
    [problem] = problems_of({**GCP, written: {}})
    assert problem.startswith(f"ha-celery:{written}: unknown setting; did you mean '{meant}'?")


def test_misspelled_nested_keys_are_named_as_written():
    problems = problems_of({**GCP, "cluster": {
        "releaseChanel": "STABLE", "nodePools": [{"name": "general", "machinType": "x"}]}})
    assert sorted(problems) == sorted([
        "ha-celery:cluster.releaseChanel: unknown setting; did you mean 'releaseChannel'? "
        "(allowed: deletionProtection, maintenanceRecurrence, masterAuthorizedNetworks, "
        "masterIpv4Cidr, nodePools, podsCidr, privateEndpoint, rbacSecurityGroup, releaseChannel, "
        "servicesCidr, subnetCidr)",
        "ha-celery:cluster.nodePools[0].machinType: unknown setting; did you mean "
        "'machineType'? (allowed: diskSizeGb, diskType, machineType, maxNodesPerZone, "
        "minNodesPerZone, name, spot)",
    ])


def test_an_unrelated_unknown_key_gets_the_allowed_list_without_a_guess():
    [problem] = problems_of({**GCP, "postgres": {"colour": "blue"}})
    assert problem.startswith("ha-celery:postgres.colour: unknown setting; allowed: ")
    assert "did you mean" not in problem and "memoryMib" in problem


def test_app_keys_are_named_as_written_not_camel_cased():
    [problem] = problems_of({**GCP, "app": {"DATABASE_URL": "postgresql://db/x"}})
    assert problem.startswith("ha-celery:app.DATABASE_URL: the platform sets DATABASE_URL")


# --- YAML's pitfalls ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", [1.3, "1.3"])
def test_an_unquoted_version_that_lost_its_zero_gets_the_quoting_hint(version):
    [problem] = problems_of({**GCP, "kubernetesVersion": version})
    assert problem.startswith("ha-celery:kubernetesVersion: got ")
    assert 'did you mean "1.30"?' in problem and 'kubernetesVersion: "1.30"' in problem


def test_an_unquoted_version_that_reads_back_the_same_is_accepted():
    assert parse({**GCP, "kubernetesVersion": 1.33}, "test").kubernetes_version == "1.33"


def test_a_yes_no_on_off_boolean_where_text_belongs_gets_the_quoting_hint():
    [problem] = problems_of({**GCP, "platform": True})
    assert problem.startswith("ha-celery:platform: got True; expected 'gcp' or 'local'")
    assert "yes/no/on/off" in problem and "quote" in problem


def test_app_values_whose_yaml_text_may_have_changed_are_refused_with_the_hint():
    problems = problems_of({**GCP, "app": {"VERSION": 1.1, "DEBUG": True, "WORKERS": 4}})
    assert [p.split(":", 2)[1].split(":")[0] for p in problems] == ["app.VERSION", "app.DEBUG"]
    assert "1.30" in problems[0] and "yes/no/on/off" in problems[1]


# --- credentials are refused in plain settings -------------------------------------------------


@pytest.mark.parametrize("name", [
    "DB_PASSWORD", "SMTP_PASS", "API_TOKEN", "SECRET_KEY", "AWS_ACCESS_KEY_ID", "SENTRY_DSN",
    "dbPassword", "CLIENTSECRET", "ERLANG_COOKIE", "GOOGLE_APPLICATION_CREDENTIALS"])
def test_a_credential_name_is_refused_whatever_its_value(name):
    [problem] = problems_of({**GCP, "app": {name: "hunter2"}})
    assert problem.startswith(f"ha-celery:app.{name}: refused as a credential: its name")
    assert f"pulumi config set --secret --path 'appSecrets.{name}' VALUE" in problem
    assert "hunter2" not in problem


@pytest.mark.parametrize(("value", "reason"), [
    ("amqp://celery:hunter2@rabbitmq:5672/celery", "URL with user-info"),
    ("https://abc123hunter2@o1.ingest.sentry.io/1", "URL with user-info"),
    ("a;amqp://u:hunter2@h//", "URL with user-info"),
    ("-----BEGIN PRIVATE KEY-----\nMIIhunter2\n-----END PRIVATE KEY-----", "PEM block"),
    ("ghp_" + "a1B2" * 9 + "hunter2", "GitHub token"),
    ("AKIA" + "HUNTER2" + "ABCDEFGHI", "AWS access key id"),
    ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJodW50ZXIyIn0.c2ln", "JSON Web Token"),
])
def test_a_credential_shaped_value_is_refused_under_an_innocent_name(value, reason):
    [problem] = problems_of({**GCP, "app": {"UPSTREAM": value}})
    assert problem.startswith("ha-celery:app.UPSTREAM: refused as a credential: its value")
    assert reason in problem and "hunter2" not in problem and "HUNTER2" not in problem


@pytest.mark.parametrize(("name", "value"), [
    ("LCS_LARGE_THRESHOLD", 5000), ("MAX_TOKENS", "4096"), ("TOKENIZER", "words"),
    ("STATUS_URL", "https://status.example.com/api"), ("PRIMARY_COLOR", "blue")])
def test_ordinary_settings_are_not_mistaken_for_credentials(name, value):
    config = parse({**GCP, "app": {name: value}}, "test")
    assert config.workloads.web.runtime.settings == {name: str(value)}


def test_every_credential_in_plain_settings_is_reported_in_one_run():
    problems = problems_of({**GCP, "app": {
        "DB_PASSWORD": "x", "API_TOKEN": "y", "BACKEND": "redis://:z@cache:6379/0", "OK": "1"}})
    assert [p.split(":", 2)[1].split(":")[0] for p in problems] == [
        "app.DB_PASSWORD", "app.API_TOKEN", "app.BACKEND"]


def test_a_secret_name_also_given_as_a_plain_setting_is_refused():
    problems = problems_of({**GCP, "app": {"FEATURE": "x"}, "appSecrets": {"FEATURE": None}})
    assert problems == ["ha-celery:appSecrets.FEATURE: also set as a plain setting "
                        "(ha-celery:app.FEATURE): keep only the secret one"]


# --- through the offline plan, from a stack file on disk ---------------------------------------


def _project(tmp_path, stack_text: str) -> str:
    """A project directory with the repository's Pulumi.yaml and one stack file, `try`."""
    (tmp_path / "Pulumi.yaml").write_text((plan_engine.ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "Pulumi.try.yaml").write_text(stack_text)
    return str(tmp_path)


def _plan(tmp_path, stack_text: str, capsys) -> tuple[int, str, str]:
    out = tmp_path / "out"
    code = plan_engine.main(["--stack", "try", "--quiet", "--project-dir",
                             _project(tmp_path, stack_text), "--out", str(out)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _dev_with(extra: str) -> str:
    return (plan_engine.ROOT / "Pulumi.dev.yaml").read_text() + extra


def test_a_refused_credential_never_reaches_a_manifest_or_resources_json(tmp_path, capsys):
    code, out, err = _plan(tmp_path, _dev_with(
        "  ha-celery:app:\n    DB_PASSWORD: hunter2\n    LCS_LARGE_THRESHOLD: 2000\n"), capsys)
    assert code == 2
    assert "ha-celery:app.DB_PASSWORD: refused as a credential" in err
    assert "hunter2" not in out + err
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "Pulumi.try.yaml"]
    assert not any("hunter2" in p.read_text(errors="replace") for p in written)
    assert not (tmp_path / "out" / "resources.json").exists()


def test_a_plain_setting_does_reach_the_manifests(tmp_path, capsys):
    # The control for the test above: the plan writes plain settings where a search finds them.
    code, _, err = _plan(tmp_path, _dev_with(
        "  ha-celery:app:\n    GREETING: hello-plain-setting\n"), capsys)
    assert code == 0, err
    assert "hello-plain-setting" in (tmp_path / "out" / "resources.json").read_text()
    assert any("hello-plain-setting" in p.read_text()
               for p in (tmp_path / "out" / "manifests").glob("*.yaml"))


def test_a_misspelled_gcp_key_is_named_once_with_its_correction(tmp_path, capsys):
    stack = _dev_with("").replace("gcp:region:", "gcp:regoin:")
    code, _, err = _plan(tmp_path, stack, capsys)
    assert code == 2
    problems = [line for line in err.splitlines() if line.startswith("  - ")]
    assert problems == ["  - gcp:regoin: unknown setting; did you mean 'gcp:region'?"]


def test_provider_keys_the_program_does_not_read_are_still_accepted(tmp_path, capsys):
    code, _, err = _plan(tmp_path, _dev_with("  gcp:zone: europe-west1-b\n"), capsys)
    assert code == 0, err


def test_an_unquoted_kubernetes_version_in_the_file_gets_the_hint(tmp_path, capsys):
    code, _, err = _plan(tmp_path, _dev_with("  ha-celery:kubernetesVersion: 1.30\n"), capsys)
    assert code == 2
    assert "ha-celery:kubernetesVersion: got '1.3'" in err
    assert 'write kubernetesVersion: "1.30"' in err


def test_on_off_in_a_text_setting_of_the_file_gets_the_hint(tmp_path, capsys):
    code, _, err = _plan(tmp_path, _dev_with("  ha-celery:app:\n    FEATURE: on\n"), capsys)
    assert code == 2
    assert "ha-celery:app.FEATURE: got True" in err and "yes/no/on/off" in err


def test_a_misspelled_required_key_is_one_mistake_not_two():
    problems = problems_of({**GCP, "cluster": {"masterAuthorizedNetworks": [{"cidrr": "x"}]}})
    assert problems == ["ha-celery:cluster.masterAuthorizedNetworks[0].cidrr: unknown setting; "
                        "did you mean 'cidr'? (allowed: cidr, displayName)"]


def test_an_unknown_key_inside_a_nested_setting_is_not_ignored():
    [problem] = problems_of({**GCP, "workers": {
        "default": {"resources": {"cpuRequst": "1"}}, "small": {}, "large": {}}})
    assert problem.startswith("ha-celery:workers.default.resources.cpuRequst: unknown setting; "
                              "did you mean 'cpuRequest'?")


def test_a_bad_project_is_named_as_gcp_project_wherever_it_is_first_checked():
    [problem] = problems_of({**GCP, "gcp_project": "Bad Project"})
    assert problem.startswith("gcp:project: got 'Bad Project'; expected a GCP project id")


def test_a_misspelled_pool_name_is_pointed_out():
    [problem] = problems_of({**GCP, "workers": {"default": {}, "large": {}, "smal": {}}})
    assert problem.endswith("'small' is missing, so its tasks would never run "
                            "(is 'smal' meant to be 'small'?)")


def test_a_renewal_window_longer_than_the_certificate_names_its_key():
    [problem] = problems_of({**GCP, "tls": {"validityDays": 90, "renewBeforeDays": 120}})
    assert problem.startswith("ha-celery:tls.renewBeforeDays: got 120; expected at least 1 and "
                              "shorter than validityDays (90)")


def test_certificate_settings_reach_the_stack():
    config = parse({**GCP, "tls": {"validityDays": 90, "renewBeforeDays": 30}}, "prod")
    assert config.workloads is not None
    policy = config.workloads.certificates
    assert (policy.validity_days, policy.renew_before_days) == (90, 30)


# --- ha-celery:observability -----------------------------------------------------------------


def test_monitoring_is_on_by_default_with_the_backups_own_age_limits():
    config = parse({**GCP, "backup": {"maxBasebackupAgeHours": 30, "maxWalAgeMinutes": 20}},
                   "test")
    settings = config.workloads.observability
    assert settings.enabled and settings.emails == ()
    assert settings.thresholds.basebackup_max_age_seconds == 30 * 3600
    assert settings.thresholds.wal_max_age_seconds == 20 * 60


def test_observability_thresholds_and_receivers_become_settings():
    config = parse({**GCP, "observability": {
        "scrapeIntervalSeconds": 60,
        "thresholds": {"webP99Seconds": 1.5, "basebackupMaxAgeSeconds": 7200,
                       "queueLimits": [{"queue": "large", "maxWaitSeconds": 3600}]},
        "emails": ["oncall@example.com"],
        "smtp": {"smarthost": "smtp.example.com:587", "sender": "alerts@example.com"}}}, "test")
    settings = config.workloads.observability
    assert settings.scrape_interval_seconds == 60
    assert settings.thresholds.web_p99_seconds == 1.5
    assert settings.thresholds.basebackup_max_age_seconds == 7200  # set: not the backup's
    assert settings.thresholds.limits_for("large").max_wait_seconds == 3600
    assert settings.routing().emails == ("oncall@example.com",)


@pytest.mark.parametrize(("observability", "expected"), [
    ({"scrapeIntervalSeconds": "fast"},
     "ha-celery:observability.scrapeIntervalSeconds: got 'fast'; expected a whole number"),
    ({"scrapeIntervalSeconds": 1},
     "ha-celery:observability.scrapeIntervalSeconds: got 1; expected a whole number of seconds, "
     "5..300"),
    ({"thresholds": {"taskFailureRatio": 2}},
     "ha-celery:observability.thresholds.taskFailureRatio: got 2"),
    ({"thresholds": {"webP99Seconds": "slow"}},
     "ha-celery:observability.thresholds.webP99Seconds: got 'slow'"),
    ({"thresholds": {"taskFailureRaito": 0.2}},
     "ha-celery:observability.thresholds.taskFailureRaito: unknown setting; did you mean "
     "'taskFailureRatio'?"),
    ({"scrapeIntervl": 30},
     "ha-celery:observability.scrapeIntervl: unknown setting; did you mean "
     "'scrapeIntervalSeconds'?"),
    ({"thresholds": {"queueLimits": [{"queue": "larg"}]}},
     "ha-celery:observability.thresholds.queueLimits[0].queue: got 'larg'; expected one of the "
     "worker queues (default, small, large) (did you mean 'large'?)"),
    ({"thresholds": {"queueLimits": [{"queue": "large", "maxMessages": 0}]}},
     "ha-celery:observability.thresholds.queueLimits[0].maxMessages: got 0"),
    ({"emails": ["not-an-address"],
      "smtp": {"smarthost": "smtp.example.com:587", "sender": "alerts@example.com"}},
     "ha-celery:observability.emails: got 'not-an-address'; expected an e-mail address"),
    ({"emails": ["oncall@example.com"]},
     "ha-celery:observability.smtp: got None; expected the mail relay"),
    ({"smtp": {"smarthost": "smtp.example.com", "sender": "alerts@example.com"}},
     "ha-celery:observability.smtp.smarthost: got 'smtp.example.com'; expected host:port"),
    ({"smtp": {"smarthost": "smtp.example.com:587", "sender": "a@example.com",
               "username": "alerts"}},
     "ha-celery:observability.smtp.username: the relay's login needs its password: `pulumi "
     "config set --secret ha-celery:alertSmtpPassword PASSWORD`"),
    ({"prometheusNamespace": "monitoring"},
     "ha-celery:observability.prometheusNamespace: only on the local stack"),
    ("yes", "ha-celery:observability: got 'yes'; expected a mapping of settings"),
])
def test_bad_observability_settings_stop_the_plan_naming_the_key(observability, expected):
    [problem] = problems_of({**GCP, "observability": observability})
    assert problem.startswith(expected), problem


def test_every_observability_mistake_is_reported_in_one_run():
    problems = problems_of({**GCP, "observability": {
        "evaluationIntervalSeconds": "often", "thresholds": {"webErrorRatio": 5}}})
    assert [p.split(":")[1] for p in problems] == [
        "observability.evaluationIntervalSeconds", "observability.thresholds.webErrorRatio"]


def test_the_local_stack_may_name_its_own_prometheus():
    config = parse({**LOCAL, "observability": {
        "prometheusNamespace": "metrics", "prometheusPodLabels": {"app": "prom"}}}, "local")
    assert config.workloads.observability.scraper("local") == ("metrics", {"app": "prom"})
    [problem] = problems_of({**LOCAL, "observability": {"prometheusPodLabels": {}}})
    assert problem.startswith("ha-celery:observability.prometheusPodLabels: got {}")
