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
    config = parse({**GCP, "cluster": {"nodePools": [{"name": "big", "machineType": "n2-standard-8"}]}},
                   "test")
    pool = config.gke.node_pools[0]
    assert (pool.name, pool.machine_type, pool.min_nodes_per_zone) == ("big", "n2-standard-8", 1)


def test_malformed_region_names_gcp_region():
    [problem] = problems_of({**GCP, "gcp_region": "europe-west", "zones": ["europe-west-b"]})
    assert problem.startswith("gcp:region: got 'europe-west'")
    assert "europe-west1" in problem


def test_negative_node_count_names_the_pool_key():
    [problem] = problems_of({**GCP, "cluster": {"nodePools": [{"name": "general",
                                                               "minNodesPerZone": -1}]}})
    assert problem.startswith("ha-celery:cluster.nodePools[0].minNodesPerZone: got -1")


def test_max_below_min_nodes_is_refused():
    [problem] = problems_of({**GCP, "cluster": {"nodePools": [
        {"name": "general", "minNodesPerZone": 3, "maxNodesPerZone": 2}]}})
    assert "maxNodesPerZone" in problem and "at least min_nodes_per_zone (3)" in problem


def test_record_outside_the_zone_names_the_record_key():
    [problem] = problems_of({**GCP, "dns": {"domain": "celery.example.com.", "records": [
        {"name": "www.example.org.", "type": "A", "rrdatas": ["192.0.2.1"]}]}})
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
    problems = problems_of({**GCP, "kubernetesVersion": "1.99",
                            "cluster": {"releaseChannel": "FAST"}})
    assert len(problems) == 2
    assert any(p.startswith("ha-celery:cluster.releaseChannel: got 'FAST'") for p in problems)


def test_bad_kubernetes_version_lists_supported_ones():
    [problem] = problems_of({**GCP, "kubernetesVersion": "1.99"})
    assert problem.startswith("ha-celery:kubernetesVersion: got '1.99'") and "1.33" in problem


def test_gcp_stack_requires_project_region_and_zones():
    problems = problems_of({"platform": "gcp"})
    assert {p.split(":", 2)[0] + ":" + p.split(":", 2)[1] for p in problems} == {
        "gcp:project", "gcp:region", "ha-celery:zones"}


def test_local_stack_refuses_gcp_settings():
    [problem] = problems_of({"platform": "local", "dns": {"domain": "a.example."}})
    assert problem.startswith("ha-celery:dns") and "local stack creates no GCP" in problem


def test_local_stack_takes_the_kube_context():
    config = parse({"platform": "local", "local": {"kubeContext": "kind-x"}}, "local")
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
