"""Every workload's NetworkPolicy, as the plan writes it: who may connect in and where each pod
may send, workload by workload, on every stack."""

from __future__ import annotations

import pytest

from stacks.plan import Plan

POD_KINDS = ("Deployment", "StatefulSet", "Job", "CronJob", "DaemonSet")
DNS = ("ns=kube-system", "k8s-app=kube-dns", "UDP/53", "TCP/53")
# AMQPS: plain AMQP listens on the broker pods' loopback only.
RABBITMQ = ("app.kubernetes.io/instance=rabbitmq,app.kubernetes.io/name=rabbitmq", "TCP/5671")
POSTGRES = ("app.kubernetes.io/instance=postgres,app.kubernetes.io/name=postgres", "TCP/5432")
GOOGLE_APIS = ("199.36.153.8/30", "TCP/443")
METADATA = ("169.254.169.254/32", "TCP/80")
LOAD_BALANCER = ("130.211.0.0/22", "TCP/8000"), ("35.191.0.0/16", "TCP/8000")
SCRAPERS = {
    # GKE's managed collectors, and the local stack's default Prometheus (ha-celery:observability).
    "dev": ("ns=gmp-system", "app.kubernetes.io/name=collector"),
    "prod": ("ns=gmp-system", "app.kubernetes.io/name=collector"),
    "local": ("ns=monitoring", "app.kubernetes.io/name=prometheus"),
}


def scraper(stack: str, port: int) -> tuple[str, ...]:
    """The metrics scraper, admitted to one metrics port."""
    return (*SCRAPERS[stack], f"TCP/{port}")


def _labels(selector: dict | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(((selector or {}).get("matchLabels")
                                                    or {}).items()))


def _ports(rule: dict) -> tuple[str, ...]:
    return tuple(f"{p['protocol']}/{p['port']}" + (f"-{p['endPort']}" if p.get("endPort") else "")
                 for p in rule.get("ports") or ())


def flatten(rules: list[dict], direction: str) -> set[tuple[str, ...]]:
    """Each (peer, ports) pair as a tuple of words; a rule without peers reads 'ANYWHERE'."""
    key = "to" if direction == "egress" else "from"
    result = set()
    for rule in rules:
        peers = rule.get(key) or [None]
        for peer in peers:
            if peer is None:
                words: tuple[str, ...] = ("ANYWHERE",)
            elif "ipBlock" in peer:
                words = (peer["ipBlock"]["cidr"],)
            else:
                words = ()
                if peer.get("namespaceSelector"):
                    namespace = peer["namespaceSelector"]["matchLabels"][
                        "kubernetes.io/metadata.name"]
                    words += (f"ns={namespace}",)
                words += (_labels(peer.get("podSelector")),)
            ports = _ports(rule)
            if words[0].startswith("ns=") or "=" in words[-1]:
                result.add((*words, *ports))
            else:
                result.update((*words, port) for port in ports or ("ALL",))
    return result


def policy_for(plan: Plan, namespace: str, pod_labels: dict[str, str]) -> dict:
    matches = [
        policy for policy in plan.kinds("NetworkPolicy")
        if policy["metadata"].get("namespace") == namespace
        and policy["metadata"]["name"] != "default-deny"
        and all(pod_labels.get(k) == v
                for k, v in policy["spec"]["podSelector"]["matchLabels"].items())
    ]
    assert len(matches) == 1, [m["metadata"]["name"] for m in matches]
    return matches[0]


def pod_labels_of(manifest: dict) -> dict[str, str]:
    spec = manifest["spec"]
    if manifest["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["metadata"]["labels"]


def workload_policy(plan: Plan, kind: str, name: str) -> dict:
    manifest = plan.manifest(kind, name)
    return policy_for(plan, manifest["metadata"]["namespace"], pod_labels_of(manifest))


def egress(policy: dict) -> set[tuple[str, ...]]:
    return flatten(policy["spec"].get("egress") or [], "egress")


def ingress(policy: dict) -> set[tuple[str, ...]]:
    return flatten(policy["spec"].get("ingress") or [], "ingress")


@pytest.mark.parametrize("stack", ["dev", "prod", "local"])
def test_every_pod_is_selected_by_a_policy_for_both_directions(plans, stack):
    plan = plans[stack]
    pods = [m for m in plan.manifests() if m["kind"] in POD_KINDS]
    assert len(pods) >= 8
    for manifest in pods:
        policy = policy_for(plan, manifest["metadata"]["namespace"], pod_labels_of(manifest))
        assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}, manifest["metadata"]


@pytest.mark.parametrize("stack", ["dev", "prod", "local"])
def test_a_pod_no_component_lists_may_send_and_receive_nothing(plans, stack):
    namespaces = {"ha-celery", "keda"} if stack != "local" else {"ha-celery"}
    for namespace in namespaces:
        [deny] = [p for p in plans[stack].kinds("NetworkPolicy")
                  if p["metadata"]["name"] == "default-deny"
                  and p["metadata"]["namespace"] == namespace]
        assert deny["spec"]["podSelector"] == {}
        assert set(deny["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        assert not deny["spec"].get("ingress") and not deny["spec"].get("egress")


@pytest.mark.parametrize("stack", ["dev", "prod", "local"])
def test_no_pod_may_send_anywhere_or_resolve_names_elsewhere(plans, stack):
    for policy in plans[stack].kinds("NetworkPolicy"):
        rules = egress(policy)
        assert not any(rule[0] in ("ANYWHERE", "0.0.0.0/0") and "UDP/53" in rule
                       for rule in rules), policy["metadata"]["name"]
        assert ("ANYWHERE", "ALL") not in rules and ("ANYWHERE",) not in rules
        for rule in rules:
            if "UDP/53" in rule or "TCP/53" in rule:
                assert rule == DNS, (policy["metadata"]["name"], rule)


@pytest.mark.parametrize("stack", ["dev", "prod", "local"])
@pytest.mark.parametrize("kind,name", [
    ("Deployment", "worker-default"), ("Deployment", "worker-small"),
    ("Deployment", "worker-large"), ("CronJob", "job-sweeper"),
])
def test_workers_and_sweeper_reach_dns_broker_and_database_only(plans, stack, kind, name):
    policy = workload_policy(plans[stack], kind, name)
    assert egress(policy) == {DNS, RABBITMQ, POSTGRES}
    assert ingress(policy) == set()


@pytest.mark.parametrize("stack", ["dev", "prod", "local"])
def test_the_scheduler_reaches_dns_broker_and_database_only(plans, stack):
    plan = plans[stack]
    (policy,) = [p for p in plan.kinds("NetworkPolicy") if p["metadata"]["name"] == "scheduler"]
    assert egress(policy) == {DNS, RABBITMQ, POSTGRES}
    assert ingress(policy) == set()


@pytest.mark.parametrize("stack", ["dev", "prod", "local"])
def test_flower_reaches_the_broker_and_only_the_scraper_reaches_flower(plans, stack):
    policy = workload_policy(plans[stack], "Deployment", "flower")
    assert egress(policy) == {DNS, RABBITMQ}
    assert ingress(policy) == {scraper(stack, 5555)}  # Flower's /metrics is on its UI port


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_on_gcp_only_the_load_balancer_reaches_the_web_pods(plans, stack):
    policy = workload_policy(plans[stack], "Deployment", "web")
    # The scraper reaches the separate metrics listener, never the app port.
    assert ingress(policy) == {*LOAD_BALANCER, scraper(stack, 9100)}
    assert egress(policy) == {DNS, RABBITMQ, POSTGRES}


def test_on_local_only_the_scraper_reaches_the_web_pods_but_port_forward(local):
    policy = workload_policy(local, "Deployment", "web")
    assert ingress(policy) == {scraper("local", 9100)}
    assert egress(policy) == {DNS, RABBITMQ, POSTGRES}


@pytest.mark.parametrize("stack", ["dev", "prod", "local"])
def test_postgres_sends_nothing_and_admits_platform_pods_and_the_scraper_only(plans, stack):
    policy = workload_policy(plans[stack], "StatefulSet", "postgres")
    assert egress(policy) == set()
    assert ingress(policy) == {("app.kubernetes.io/part-of=ha-celery", "TCP/5432"),
                               scraper(stack, 9187)}  # the exporter sidecar, not the database


@pytest.mark.parametrize("stack", ["dev", "prod", "local"])
def test_the_scraper_reaches_each_broker_node_on_its_prometheus_port_only(plans, stack):
    policy = workload_policy(plans[stack], "StatefulSet", "rabbitmq")
    from_scraper = {rule for rule in ingress(policy) if rule[:2] == SCRAPERS[stack]}
    assert from_scraper == {scraper(stack, 15691)}  # https; plain 15692 is loopback-only


@pytest.mark.parametrize("stack,api", [("dev", ("172.16.0.0/28", "TCP/443")),
                                       ("prod", ("172.16.0.0/28", "TCP/443"))])
def test_rabbitmq_reaches_its_peers_dns_and_the_control_plane_only(plans, stack, api):
    policy = workload_policy(plans[stack], "StatefulSet", "rabbitmq")
    peers = "app.kubernetes.io/instance=rabbitmq,app.kubernetes.io/name=rabbitmq"
    assert egress(policy) == {DNS, (peers, "TCP/4369", "TCP/25672", "TCP/35672-35682"), api}


def test_rabbitmq_on_local_reaches_the_api_server_wherever_it_is(local):
    policy = workload_policy(local, "StatefulSet", "rabbitmq")
    assert ("0.0.0.0/0", "TCP/443") in egress(policy)
    assert ("0.0.0.0/0", "TCP/6443") in egress(policy)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_pghoard_reaches_the_database_and_google_apis_only(plans, stack):
    policy = workload_policy(plans[stack], "Deployment", "backup")
    assert egress(policy) == {DNS, POSTGRES, GOOGLE_APIS, METADATA}
    assert ingress(policy) == {scraper(stack, 9188)}  # the freshness exporter sidecar


def test_pghoard_on_local_reaches_the_database_only(local):
    policy = workload_policy(local, "Deployment", "backup")
    assert egress(policy) == {DNS, POSTGRES}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_google_apis_resolve_to_the_private_range_the_policies_name(plans, stack):
    plan = plans[stack]
    (zone,) = [r for r in plan.of_type("gcp:dns/managedZone:ManagedZone")
               if r.inputs["dnsName"] == "googleapis.com."]
    assert zone.inputs["visibility"] == "private"
    records = {r.inputs["name"]: r.inputs for r in plan.of_type("gcp:dns/recordSet:RecordSet")
               if r.inputs["managedZone"] == zone.inputs.get("name", zone.name)}
    assert sorted(records["private.googleapis.com."]["rrdatas"]) == [
        "199.36.153.10", "199.36.153.11", "199.36.153.8", "199.36.153.9"]
    assert records["*.googleapis.com."]["rrdatas"] == ["private.googleapis.com."]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_keda_pod_has_its_policy(plans, stack):
    plan = plans[stack]
    api = ("172.16.0.0/28", "TCP/443")
    operator = policy_for(plan, "keda", {"app": "keda-operator"})
    management = ("ns=ha-celery",
                  "app.kubernetes.io/instance=rabbitmq,app.kubernetes.io/name=rabbitmq",
                  "TCP/15671")
    assert egress(operator) == {DNS, api, management}
    assert ingress(operator) == {("app=keda-operator-metrics-apiserver", "TCP/9666"),
                                 scraper(stack, 8080)}
    metrics = policy_for(plan, "keda", {"app": "keda-operator-metrics-apiserver"})
    assert ingress(metrics) == {("172.16.0.0/28", "TCP/6443")}
    assert egress(metrics) == {DNS, api, ("app=keda-operator", "TCP/9666")}
    webhooks = policy_for(plan, "keda", {"app": "keda-admission-webhooks"})
    assert ingress(webhooks) == {("172.16.0.0/28", "TCP/9443")}
    assert egress(webhooks) == {DNS, api}
