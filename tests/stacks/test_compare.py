"""The change review on hand-made plans: each classification and each risk, at the lowest layer."""

from __future__ import annotations

import copy

import pytest

from stacks.plan import compare, default_options

STACK_URN = "urn:pulumi:prod::ha-celery"
PROVIDER_URN = f"{STACK_URN}::pulumi:providers:kubernetes::kubernetes"


def resource(type_, name, inputs, *, parent="component", options=None, digests=None):
    return {
        "urn": f"{STACK_URN}::{type_}::{name}",
        "type": type_,
        "name": name,
        "parent": f"{STACK_URN}::hacelery:x:X::{parent}",
        "provider": PROVIDER_URN if type_.startswith("kubernetes:") else None,
        "options": {**default_options(), **(options or {})},
        "inputs": inputs,
        "secretDigests": digests or {},
    }


def provider(**inputs):
    return {"urn": PROVIDER_URN, "type": "pulumi:providers:kubernetes", "name": "kubernetes",
            "parent": None, "provider": None, "options": default_options(),
            "inputs": {"kubeconfig": "[secret]", **inputs}, "secretDigests": {}}


def statefulset(size="20Gi", **options):
    return resource("kubernetes:apps/v1:StatefulSet", "rabbitmq-statefulset", {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "rabbitmq", "namespace": "ha-celery"},
        "spec": {"replicas": 3, "template": {"spec": {"containers": [{"image": "r:4"}]}},
                 "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                     "resources": {"requests": {"storage": size}}}}]}}, options=options)


def deployment(image="app:1", name="web"):
    return resource("kubernetes:apps/v1:Deployment", f"{name}-deployment", {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "ha-celery"},
        "spec": {"selector": {"matchLabels": {"app": name}},
                 "template": {"spec": {"containers": [{"image": image}]}}}})


def claim(size="50Gi", storage_class="premium-rwo", **options):
    return resource("kubernetes:core/v1:PersistentVolumeClaim", "rabbitmq-data-0", {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data-rabbitmq-0", "namespace": "ha-celery"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": storage_class,
                 "resources": {"requests": {"storage": size}}}}, options=options)


def secret(digest):
    return resource("kubernetes:core/v1:Secret", "app-secrets-secret", {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "app-secrets", "namespace": "ha-celery"},
        "stringData": {"SENTRY_DSN": "[secret]"}}, digests={"stringData.SENTRY_DSN": digest})


def job(run_id):
    return resource("kubernetes:batch/v1:Job", f"scheduler-{run_id}", {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": f"scheduler-{run_id}", "namespace": "ha-celery"},
        "spec": {"template": {"spec": {"containers": [{"image": "app:1"}]}}}},
        parent="scheduler", options={"deleteBeforeReplace": True, "ignoreChanges": ["spec"]})


def only(result: compare.Review) -> compare.Change:
    assert len(result.changes) == 1, [(c.action, c.name) for c in result.changes]
    return result.changes[0]


def test_the_same_plan_compares_as_zero_changes():
    plan = [provider(), statefulset(), deployment(), claim(), secret("a")]
    result = compare.review(plan, copy.deepcopy(plan))
    assert result.changes == []
    assert result.exit_code(accept_risk=False) == 0


def test_a_statefulset_claim_template_change_is_a_replacement_with_data_at_risk():
    result = compare.review([provider(), statefulset("20Gi")], [provider(), statefulset("30Gi")])
    change = only(result)
    assert change.action == "replace"
    assert change.risk_kinds == {compare.DATA_AT_RISK, compare.OUTAGE}
    assert change.delete_first
    assert any("spec.volumeClaimTemplates" in forced for forced in change.forced_by)
    assert result.exit_code(accept_risk=False) == compare.EXIT_RISK
    assert result.exit_code(accept_risk=True) == 0


def test_ignored_paths_are_no_change_at_all():
    before = statefulset("20Gi", ignoreChanges=["spec.volumeClaimTemplates"])
    after = statefulset("30Gi", ignoreChanges=["spec.volumeClaimTemplates"])
    assert compare.review([provider(), before], [provider(), after]).changes == []


def test_a_new_image_is_a_rolling_update_not_a_replacement():
    result = compare.review([provider(), deployment("app:1")], [provider(), deployment("app:2")])
    change = only(result)
    assert (change.action, change.rolling_restart, change.risks) == ("update", True, [])
    assert result.exit_code(accept_risk=False) == 0


def test_a_deployment_whose_selector_changes_is_replaced_under_its_own_name_an_outage():
    after = deployment()
    after["inputs"]["spec"]["selector"]["matchLabels"]["app"] = "web2"
    change = only(compare.review([provider(), deployment()], [provider(), after]))
    assert change.action == "replace" and change.delete_first
    assert change.risk_kinds == {compare.OUTAGE}


def test_a_secret_value_change_is_an_update_with_mutable_secrets_and_a_replace_without():
    mutable = provider(enableSecretMutable=True)
    change = only(compare.review([mutable, secret("a")], [mutable, secret("b")]))
    assert change.action == "update" and change.risks == []
    assert [c.text for c in change.paths] == ["stringData.SENTRY_DSN"]
    immutable = provider()
    change = only(compare.review([immutable, secret("a")], [immutable, secret("b")]))
    assert change.action == "replace" and change.delete_first
    assert change.risk_kinds == {compare.OUTAGE}


def test_growing_a_claim_is_an_in_place_expansion():
    change = only(compare.review([provider(), claim("50Gi")], [provider(), claim("60Gi")]))
    assert change.action == "update" and change.risks == []
    assert any("expand" in note for note in change.notes)


def test_shrinking_a_claim_is_refused_and_no_flag_accepts_it():
    result = compare.review([provider(), claim("50Gi")], [provider(), claim("40Gi")])
    change = only(result)
    assert change.risk_kinds == {compare.REFUSED}
    assert result.exit_code(accept_risk=True) == compare.EXIT_REFUSED


def test_a_new_storage_class_replaces_the_claim_and_puts_data_at_risk():
    result = compare.review([provider(), claim(storage_class="premium-rwo", protect=True)],
                            [provider(), claim(storage_class="standard-rwo", protect=True)])
    change = only(result)
    assert change.action == "replace" and compare.DATA_AT_RISK in change.risk_kinds
    assert change.protected
    assert any("protected" in note for note in change.notes)


def test_a_new_run_id_replaces_the_one_job_under_a_new_name_and_is_not_a_risk():
    result = compare.review([provider(), job("first")], [provider(), job("second")])
    change = only(result)
    assert (change.action, change.old_name, change.name) == (
        "replace", "scheduler-first", "scheduler-second")
    assert change.risks == [] and not change.delete_first
    assert result.exit_code(accept_risk=False) == 0


def test_a_changed_template_of_the_same_job_is_ignored():
    after = job("first")
    after["inputs"]["spec"]["template"]["spec"]["containers"][0]["image"] = "app:2"
    assert compare.review([provider(), job("first")], [provider(), after]).changes == []


def test_deleting_a_retained_claim_keeps_the_data_and_is_not_a_risk():
    result = compare.review([provider(), claim(retainOnDelete=True)], [provider()])
    change = only(result)
    assert change.action == "delete" and change.risks == []
    assert any("retainOnDelete" in note for note in change.notes)


def test_deleting_an_unretained_claim_puts_data_at_risk():
    change = only(compare.review([provider(), claim()], [provider()]))
    assert change.action == "delete" and change.risk_kinds == {compare.DATA_AT_RISK}


def test_a_protect_flip_is_an_options_change_that_touches_nothing():
    result = compare.review([provider(), claim()], [provider(), claim(protect=True)])
    change = only(result)
    assert change.action == "options" and change.risks == []
    assert "protect: false -> true" in change.notes[0]


@pytest.mark.parametrize("type_, name, risk", [
    ("gcp:storage/bucket:Bucket", "backup-bucket", compare.DATA_AT_RISK),
    ("gcp:container/cluster:Cluster", "gke-cluster", compare.DATA_AT_RISK),
    ("gcp:dns/managedZone:ManagedZone", "dns-zone", compare.OUTAGE),
    ("gcp:container/nodePool:NodePool", "gke-general", compare.OUTAGE),
    ("tls:index/privateKey:PrivateKey", "backup-encryption-key", compare.DATA_AT_RISK),
    ("kubernetes:core/v1:Namespace", "platform-namespace", compare.DATA_AT_RISK),
])
def test_deleting_what_holds_data_or_serves_traffic_is_flagged(type_, name, risk):
    gone = resource(type_, name, {"name": name})
    result = compare.review([provider(), gone], [provider()])
    assert risk in only(result).risk_kinds
    assert result.exit_code(accept_risk=False) == compare.EXIT_RISK


def test_an_earlier_plan_without_options_or_digests_is_compared_with_a_warning():
    old = statefulset()
    del old["options"], old["secretDigests"]
    result = compare.review([provider(), old], [provider(), statefulset()])
    assert result.changes == []
    assert len(result.warnings) == 2


def test_the_report_names_each_change_its_cause_and_the_way_forward():
    result = compare.review([provider(), statefulset("20Gi"), deployment("app:1")],
                            [provider(), statefulset("30Gi"), deployment("app:2")])
    text = compare.render(result, before="main", after="branch", accept_risk=False)
    assert "replace  kubernetes:apps/v1:StatefulSet  rabbitmq-statefulset  [DATA AT RISK, " \
           "OUTAGE]" in text
    assert "forces replacement: spec.volumeClaimTemplates[0].spec.resources.requests.storage" \
        in text
    assert "update   kubernetes:apps/v1:Deployment  web-deployment" in text
    assert "summary: 1 replace, 1 update; 1 at risk, 0 refused" in text
    assert "--accept-risk" in text.splitlines()[-1]


def test_an_earlier_plan_directory_without_resources_is_refused_with_the_fix(tmp_path):
    with pytest.raises(compare.PlanDirError, match=r"\./run plan STACK --out"):
        compare.load_resources(tmp_path)
    (tmp_path / "resources.json").write_text("{not json")
    with pytest.raises(compare.PlanDirError, match="not JSON"):
        compare.load_resources(tmp_path)
    (tmp_path / "resources.json").write_text('{"a": 1}')
    with pytest.raises(compare.PlanDirError, match="resource list"):
        compare.load_resources(tmp_path)
