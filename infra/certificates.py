"""What every TLS certificate of a stack says, as pure data shared by the stack and the drills.

Owns the certificate policy (validity, renewal window, key type) and the server certificate specs:
RabbitMQ (every pod's DNS names for AMQP, management and Erlang distribution, the client Service,
``localhost`` for the pod's own probes and CLI tools) and PostgreSQL (its Service's names).
``infra/tls.py`` issues them with pulumi-tls inside the stack; ``drills/certificates.py`` issues
the very same specs with ``cryptography`` for the local drills, so a drill runs TLS with the names,
key type and usages the cluster gets.

Deliberately holds no key material and imports neither pulumi nor a crypto library.
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.validation import check

KEY_ALGORITHM = "ECDSA"
KEY_CURVE = "P256"
"""ECDSA P-256: the cheapest handshake of the widely supported key types (Erlang/OTP, libpq,
OpenSSL and Python's ssl all take it), which matters on every reconnect after a failover."""
CLUSTER_DOMAIN = "cluster.local"
SERVER_USAGES = ("digital_signature", "key_encipherment", "server_auth")
PEER_USAGES = (*SERVER_USAGES, "client_auth")
"""RabbitMQ nodes are both ends of Erlang distribution: each presents its certificate as a
client to its peers too (mutual TLS between nodes)."""
CA_USAGES = ("cert_signing", "crl_signing", "digital_signature")


@dataclass(frozen=True, kw_only=True)
class CertificatePolicy:
    """How long certificates live and when they are replaced.

    The stack's CA signs every server certificate; clients trust the CA, never a server
    certificate, so replacing a server certificate (a new key, a new expiry) needs no client
    change. pulumi-tls replaces a certificate at the first ``pulumi up`` inside its renewal
    window, so an ``up`` must run at least once every ``validity_days - renew_before_days``
    days (the README says how to check the expiry).
    """

    validity_days: int = 365
    renew_before_days: int = 60
    ca_validity_days: int = 3650
    """Ten years: replacing the CA means every client trusts two CAs for a while (README)."""
    ca_renew_before_days: int = 365

    def __post_init__(self) -> None:
        owner = "CertificatePolicy"
        check(1 <= self.validity_days <= 825, f"{owner}.validity_days", self.validity_days,
              "1..825 days (825 is the most clients accept for a server certificate)")
        check(1 <= self.renew_before_days < self.validity_days,
              f"{owner}.renew_before_days", self.renew_before_days,
              f"at least 1 and shorter than validity_days ({self.validity_days}); a renewal "
              "window as long as the validity would replace the certificate on every up")
        check(self.validity_days < self.ca_validity_days, f"{owner}.ca_validity_days",
              self.ca_validity_days,
              f"longer than validity_days ({self.validity_days}): the CA must outlive what it "
              "signs")
        check(1 <= self.ca_renew_before_days < self.ca_validity_days,
              f"{owner}.ca_renew_before_days", self.ca_renew_before_days,
              f"at least 1 and shorter than ca_validity_days ({self.ca_validity_days})")

    @property
    def validity_hours(self) -> int:
        return self.validity_days * 24

    @property
    def renew_before_hours(self) -> int:
        return self.renew_before_days * 24


@dataclass(frozen=True, kw_only=True)
class CertificateSpec:
    """The subject, names and usages of one certificate (the same wherever it is issued)."""

    name: str
    """A short id: the file and Secret key stem (``rabbitmq``, ``postgres``, ``ca``)."""
    common_name: str
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    usages: tuple[str, ...] = SERVER_USAGES
    organization: str = "ha-celery"

    def __post_init__(self) -> None:
        check(bool(self.common_name) and len(self.common_name) <= 64,
              "CertificateSpec.common_name", self.common_name, "1-64 characters (X.509 limit)")
        check(len(set(self.dns_names)) == len(self.dns_names), "CertificateSpec.dns_names",
              self.dns_names, "each name once")


def ca_spec(stack: str) -> CertificateSpec:
    """The stack's own certificate authority."""
    return CertificateSpec(name="ca", common_name=f"ha-celery {stack} CA", usages=CA_USAGES)


def service_names(service: str, namespace: str, cluster_domain: str = CLUSTER_DOMAIN) -> list[str]:
    """Every name a pod can reach a Service by: short, namespaced, and fully qualified."""
    return [service, f"{service}.{namespace}", f"{service}.{namespace}.svc",
            f"{service}.{namespace}.svc.{cluster_domain}"]


def rabbitmq_spec(
    *,
    namespace: str,
    statefulset: str,
    headless_service: str,
    client_service: str,
    replicas: int,
    cluster_domain: str = CLUSTER_DOMAIN,
) -> CertificateSpec:
    """One certificate for every RabbitMQ node (the nodes are interchangeable; one key pair
    keeps rotation one Secret). Names: each pod through the headless Service (AMQP clients'
    failover lists and Erlang distribution use these), the client Service, and localhost for
    the pod's own probes and ``rabbitmqctl``."""
    check(replicas >= 1, "rabbitmq_spec.replicas", replicas, "1 or more")
    pods = [
        name
        for ordinal in range(replicas)
        for name in (f"{statefulset}-{ordinal}.{headless_service}.{namespace}.svc.{cluster_domain}",
                     f"{statefulset}-{ordinal}.{headless_service}.{namespace}.svc",
                     f"{statefulset}-{ordinal}.{headless_service}.{namespace}",
                     f"{statefulset}-{ordinal}.{headless_service}")
    ]
    return CertificateSpec(
        name="rabbitmq",
        common_name=f"{client_service}.{namespace}.svc",
        dns_names=(*pods, *service_names(client_service, namespace, cluster_domain),
                   *service_names(headless_service, namespace, cluster_domain), "localhost"),
        ip_addresses=("127.0.0.1",),
        usages=PEER_USAGES,
    )


def postgres_spec(
    *, namespace: str, service: str, cluster_domain: str = CLUSTER_DOMAIN
) -> CertificateSpec:
    """The database server: its Service's names, and localhost for the pod's own tools."""
    return CertificateSpec(
        name="postgres",
        common_name=f"{service}.{namespace}.svc",
        dns_names=(*service_names(service, namespace, cluster_domain), "localhost"),
        ip_addresses=("127.0.0.1",),
    )


__all__ = [
    "CA_USAGES",
    "KEY_ALGORITHM",
    "KEY_CURVE",
    "PEER_USAGES",
    "SERVER_USAGES",
    "CertificatePolicy",
    "CertificateSpec",
    "ca_spec",
    "postgres_spec",
    "rabbitmq_spec",
    "service_names",
]
