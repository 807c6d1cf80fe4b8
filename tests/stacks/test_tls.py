"""TLS inside the cluster, through the offline plan of every stack: the CA, PostgreSQL's
certificate and TLS-only listener, and every client verifying the server against the CA."""

from __future__ import annotations

import pytest
from pulumi.runtime import rpc

from infra.rabbitmq import AMQPS_PORT, MANAGEMENT_TLS_PORT, PROMETHEUS_TLS_PORT
from infra.tls import TRUST_BUNDLE_DIR, TRUST_BUNDLE_FILE

STACKS = ("dev", "prod", "local")
APP_WORKLOADS = [("Deployment", "web"), ("Deployment", "worker-default"),
                 ("Deployment", "worker-small"), ("Deployment", "worker-large"),
                 ("Deployment", "flower"), ("CronJob", "job-sweeper")]


def pod(manifest: dict) -> dict:
    spec = manifest["spec"]
    if manifest["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]


def secret_value(plan, name: str, key: str) -> str:
    [secret] = [r for r in plan.of_type("kubernetes:core/v1:Secret")
                if r.inputs["metadata"]["name"] == name]
    data = secret.inputs["stringData"]
    data = rpc.unwrap_rpc_secret(data) if rpc.is_rpc_secret(data) else data
    value = data[key]
    return rpc.unwrap_rpc_secret(value) if rpc.is_rpc_secret(value) else value


@pytest.mark.parametrize("stack", STACKS)
def test_one_ca_per_stack_signs_the_database_certificate(plans, stack: str) -> None:
    plan = plans[stack]
    [ca] = plan.of_type("tls:index/selfSignedCert:SelfSignedCert")
    assert ca.inputs["isCaCertificate"] is True and ca.inputs["maxPathLength"] == 0
    assert ca.inputs["subject"]["commonName"] == f"ha-celery {stack} CA"
    [request] = [r for r in plan.of_type("tls:index/certRequest:CertRequest")
                 if r.name.startswith("postgres-")]
    assert "postgres.ha-celery.svc.cluster.local" in request.inputs["dnsNames"]
    [signed] = [r for r in plan.of_type("tls:index/locallySignedCert:LocallySignedCert")
                if r.name.startswith("postgres-")]
    assert (signed.inputs["validityPeriodHours"], signed.inputs["earlyRenewalHours"]) == (
        365 * 24, 60 * 24)
    assert "server_auth" in signed.inputs["allowedUses"]
    for key in plan.of_type("tls:index/privateKey:PrivateKey"):
        if key.name.startswith(("tls-", "postgres-", "rabbitmq-")):
            assert (key.inputs["algorithm"], key.inputs["ecdsaCurve"]) == ("ECDSA", "P256")


@pytest.mark.parametrize("stack", STACKS)
def test_postgres_takes_network_clients_over_tls_only(plans, stack: str) -> None:
    plan = plans[stack]
    assert plan.manifest("Secret", "postgres-tls")["type"] == "kubernetes.io/tls"
    config = plan.manifest("ConfigMap", "postgres-config")["data"]
    assert "ssl = on" in config["postgresql.conf"]
    hba = [line.split() for line in config["pg_hba.conf"].splitlines() if line.strip()]
    assert ["hostnossl", "all", "all", "all", "reject"] in hba
    assert not any(row[0] == "host" and row[-1] != "reject" for row in hba)
    statefulset = plan.manifest("StatefulSet", "postgres")
    [tls] = [v for v in pod(statefulset)["volumes"] if v["name"] == "tls"]
    assert tls["secret"] == {"secretName": "postgres-tls", "defaultMode": 0o440}
    annotations = statefulset["spec"]["template"]["metadata"]["annotations"]
    assert "hacelery/certificate-checksum" in annotations


@pytest.mark.parametrize("stack", STACKS)
def test_every_client_verifies_the_database_against_the_stack_ca(plans, stack: str) -> None:
    plan = plans[stack]
    url = secret_value(plan, "postgres-app-url", "database-url")
    assert url.endswith(f"?sslmode=verify-full&sslrootcert={TRUST_BUNDLE_FILE}")
    config = secret_value(plan, "backup-config", "pghoard.json")
    assert '"sslmode": "verify-full"' in config and TRUST_BUNDLE_FILE in config
    bundle = plan.manifest("ConfigMap", "trust-bundle")
    assert set(bundle["data"]) == {"ca.crt"}
    for kind, name in [*APP_WORKLOADS, ("Deployment", "backup")]:
        spec = pod(plan.manifest(kind, name))
        assert {"name": "trust-bundle", "configMap": {"name": "trust-bundle"}} in spec["volumes"]
        for container in spec["containers"] + (spec.get("initContainers") or []):
            if (name, container["name"]) == ("backup", "backup-metrics"):
                # The freshness exporter asks pghoard's API on the pod's loopback, never the
                # database: it has no database client to configure.
                assert "trust-bundle" not in {m["name"] for m in container["volumeMounts"]}
                continue
            mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
            assert mounts.get("trust-bundle") == TRUST_BUNDLE_DIR, (name, container["name"])


# ------------------------------------------------------------------------------------ RabbitMQ


@pytest.mark.parametrize("stack", STACKS)
def test_the_broker_certificate_names_every_pod_and_the_client_service(plans, stack: str) -> None:
    plan = plans[stack]
    [request] = [r for r in plan.of_type("tls:index/certRequest:CertRequest")
                 if r.name.startswith("rabbitmq-")]
    names = request.inputs["dnsNames"]
    replicas = plan.manifest("StatefulSet", "rabbitmq")["spec"]["replicas"]
    for ordinal in range(replicas):
        pod_name = f"rabbitmq-{ordinal}.rabbitmq-nodes.ha-celery"
        assert {pod_name, f"{pod_name}.svc", f"{pod_name}.svc.cluster.local"} <= set(names)
    assert {"rabbitmq", "rabbitmq.ha-celery.svc.cluster.local"} <= set(names)
    [signed] = [r for r in plan.of_type("tls:index/locallySignedCert:LocallySignedCert")
                if r.name.startswith("rabbitmq-")]
    # Nodes are both ends of distribution: the same certificate serves and dials.
    assert {"server_auth", "client_auth"} <= set(signed.inputs["allowedUses"])
    # The same ha-celery:tls policy as PostgreSQL's (validated once, see test_config).
    assert (signed.inputs["validityPeriodHours"], signed.inputs["earlyRenewalHours"]) == (
        365 * 24, 60 * 24)


@pytest.mark.parametrize("stack", STACKS)
def test_no_plaintext_broker_port_is_reachable_from_the_pod_network(plans, stack: str) -> None:
    plan = plans[stack]
    conf = plan.manifest("ConfigMap", "rabbitmq-config")["data"]
    rabbitmq_conf = conf["rabbitmq.conf"]
    assert "listeners.tcp.default = 127.0.0.1:5672" in rabbitmq_conf
    assert f"listeners.ssl.default = {AMQPS_PORT}" in rabbitmq_conf
    assert "management.tcp.ip = 127.0.0.1" in rabbitmq_conf
    assert "prometheus.tcp.ip = 127.0.0.1" in rabbitmq_conf
    assert "{fail_if_no_peer_cert, true}" in conf["inter_node_tls.config"]
    assert "-proto_dist inet_tls" in conf["rabbitmq-env.conf"]
    statefulset = plan.manifest("StatefulSet", "rabbitmq")
    [container] = pod(statefulset)["containers"]
    ports = {p["containerPort"] for p in container["ports"]}
    assert ports.isdisjoint({5672, 15672, 15692})
    assert {AMQPS_PORT, MANAGEMENT_TLS_PORT, PROMETHEUS_TLS_PORT} <= ports
    for service in ("rabbitmq", "rabbitmq-nodes"):
        service_ports = {p["port"] for p in plan.manifest("Service", service)["spec"]["ports"]}
        assert service_ports.isdisjoint({5672, 15672, 15692}), service
    policy = plan.manifest("NetworkPolicy", "rabbitmq")
    allowed = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert allowed.isdisjoint({5672, 15672, 15692})
    annotations = statefulset["spec"]["template"]["metadata"]["annotations"]
    assert "hacelery.io/certificate-checksum" in annotations
    [tls] = [v for v in pod(statefulset)["volumes"] if v["name"] == "tls"]
    assert tls["secret"] == {"secretName": "rabbitmq-tls", "defaultMode": 0o440}


@pytest.mark.parametrize("stack", STACKS)
def test_every_broker_client_verifies_the_broker_against_the_stack_ca(plans, stack: str) -> None:
    plan = plans[stack]
    urls = secret_value(plan, "rabbitmq-broker", "broker_url").split(";")
    assert urls and all(u.startswith("amqps://") and f":{AMQPS_PORT}/" in u for u in urls)
    for kind, name in APP_WORKLOADS:
        for container in pod(plan.manifest(kind, name))["containers"]:
            env = {e["name"]: e.get("value") for e in container["env"]}
            assert env["CELERY_BROKER_CA_FILE"] == TRUST_BUNDLE_FILE, (name, container["name"])
