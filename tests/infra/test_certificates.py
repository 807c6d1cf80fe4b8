"""Certificate specs and policy (pure), and the drills' local issuer against them."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from drills import certificates as local
from infra.certificates import (
    CertificatePolicy,
    ca_spec,
    postgres_spec,
    rabbitmq_spec,
)
from infra.validation import ArgsError


def test_rabbitmq_names_every_pod_the_services_and_localhost() -> None:
    spec = rabbitmq_spec(
        namespace="ha-celery",
        statefulset="rabbitmq",
        headless_service="rabbitmq-nodes",
        client_service="rabbitmq",
        replicas=3,
    )
    for ordinal in range(3):
        assert f"rabbitmq-{ordinal}.rabbitmq-nodes.ha-celery.svc.cluster.local" in spec.dns_names
    assert "rabbitmq.ha-celery.svc" in spec.dns_names and "localhost" in spec.dns_names
    assert "client_auth" in spec.usages  # nodes authenticate each other (Erlang distribution)


def test_postgres_names_its_service_and_is_a_server_only_certificate() -> None:
    spec = postgres_spec(namespace="ha-celery", service="postgres")
    assert spec.dns_names[:4] == (
        "postgres",
        "postgres.ha-celery",
        "postgres.ha-celery.svc",
        "postgres.ha-celery.svc.cluster.local",
    )
    assert "client_auth" not in spec.usages


@pytest.mark.parametrize(
    "fields, key",
    [
        ({"validity_days": 30, "renew_before_days": 30}, "CertificatePolicy.renew_before_days"),
        ({"validity_days": 30, "renew_before_days": 45}, "CertificatePolicy.renew_before_days"),
        ({"validity_days": 900}, "CertificatePolicy.validity_days"),
        ({"validity_days": 400, "ca_validity_days": 365}, "CertificatePolicy.ca_validity_days"),
    ],
)
def test_a_renewal_window_that_cannot_work_names_the_field(fields: dict, key: str) -> None:
    with pytest.raises(ArgsError) as error:
        CertificatePolicy(**fields)
    assert error.value.field == key


def test_the_local_issuer_issues_exactly_the_spec(tmp_path: Path) -> None:
    spec = postgres_spec(namespace="ha-celery", service="postgres")
    policy = CertificatePolicy(validity_days=90, renew_before_days=30)
    authority = local.issue([spec], tmp_path, policy=policy, stack="dev")
    ca = x509.load_pem_x509_certificate(authority.ca_certificate.read_bytes())
    server = x509.load_pem_x509_certificate(authority["postgres"].certificate.read_bytes())
    assert f"CN={ca_spec('dev').common_name}" in ca.subject.rfc4514_string()
    assert server.issuer == ca.subject
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert tuple(names.get_values_for_type(x509.DNSName)) == spec.dns_names
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    usages = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.SERVER_AUTH]
    lifetime = server.not_valid_after_utc - server.not_valid_before_utc
    assert 90 <= lifetime.days <= 91
    assert oct(authority["postgres"].key.stat().st_mode)[-3:] == "600"
    ca.verify_directly_issued_by(ca)
    server.verify_directly_issued_by(ca)
