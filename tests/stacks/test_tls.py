"""TLS inside the cluster, through the offline plan of every stack: the CA, PostgreSQL's
certificate and TLS-only listener, and every client verifying the server against the CA."""

from __future__ import annotations

import pytest
from pulumi.runtime import rpc

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
    [request] = plan.of_type("tls:index/certRequest:CertRequest")
    assert "postgres.ha-celery.svc.cluster.local" in request.inputs["dnsNames"]
    [signed] = plan.of_type("tls:index/locallySignedCert:LocallySignedCert")
    assert (signed.inputs["validityPeriodHours"], signed.inputs["earlyRenewalHours"]) == (
        365 * 24, 60 * 24)
    assert "server_auth" in signed.inputs["allowedUses"]
    for key in plan.of_type("tls:index/privateKey:PrivateKey"):
        if key.name.startswith(("tls-", "postgres-")):
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
