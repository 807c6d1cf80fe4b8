"""The stack's own certificate authority and the server certificates it signs (pulumi-tls).

Owns: the CA (an ECDSA P-256 key and a self-signed CA certificate) and one key + certificate per
``CertificateSpec`` from ``infra.certificates``, with the validity and renewal window of the
stack's ``CertificatePolicy``; and the builder of the ``kubernetes.io/tls`` Secret a server mounts
(``tls.crt``, ``tls.key``, ``ca.crt``). Keys live only in Pulumi state (encrypted, as secrets) and
in those Secrets.

Rotation: pulumi-tls replaces a certificate at the first ``pulumi up`` inside its renewal window
(``early_renewal_hours``); the CA stays, so clients, which trust the CA only, see nothing but a new
certificate at their next handshake. The servers pick the new files up from the updated Secret
volume: PostgreSQL on reload, RabbitMQ for new connections (see the README's rotation section).

Does not own where the files are mounted or which server reads them (the RabbitMQ and PostgreSQL
components do), nor the specs (``infra.certificates``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s
import pulumi_tls as tls

from infra.certificates import (
    KEY_ALGORITHM,
    KEY_CURVE,
    CertificatePolicy,
    CertificateSpec,
    ca_spec,
)

CERTIFICATE_KEY = "tls.crt"
PRIVATE_KEY_KEY = "tls.key"
CA_KEY = "ca.crt"


@dataclass(frozen=True, kw_only=True)
class CertificateAuthorityArgs:
    """Inputs for CertificateAuthority. Only ``stack`` is required."""

    stack: str
    """Named in the CA's subject, so a certificate from another stack is recognisable."""
    policy: CertificatePolicy = field(default_factory=CertificatePolicy)


def _key(name: str, opts: pulumi.ResourceOptions) -> tls.PrivateKey:
    return tls.PrivateKey(name, algorithm=KEY_ALGORITHM, ecdsa_curve=KEY_CURVE, opts=opts)


class CertificateAuthority(pulumi.ComponentResource):
    """The stack's CA; ``issue`` signs a server certificate for a spec."""

    certificate_pem: pulumi.Output[str]
    """The CA certificate every client trusts (public)."""

    def __init__(self, name: str, args: CertificateAuthorityArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hacelery:tls:CertificateAuthority", name, None, opts)
        self._name = name
        self._policy = args.policy
        child = pulumi.ResourceOptions(parent=self)
        spec = ca_spec(args.stack)
        self._key = _key(f"{name}-key", child)
        certificate = tls.SelfSignedCert(
            f"{name}-certificate",
            private_key_pem=self._key.private_key_pem,
            is_ca_certificate=True,
            # Path length 0: the CA signs server certificates only, never another CA.
            max_path_length=0,
            set_subject_key_id=True,
            validity_period_hours=args.policy.ca_validity_days * 24,
            early_renewal_hours=args.policy.ca_renew_before_days * 24,
            allowed_uses=list(spec.usages),
            subject=tls.SelfSignedCertSubjectArgs(
                common_name=spec.common_name, organization=spec.organization),
            opts=child,
        )
        self.certificate_pem = certificate.cert_pem
        self.register_outputs({"certificate_pem": self.certificate_pem})

    def issue(self, spec: CertificateSpec) -> ServerCertificate:
        """A key and a certificate for ``spec``, signed by this CA (children of the CA)."""
        return ServerCertificate(
            f"{self._name}-{spec.name}",
            ServerCertificateArgs(spec=spec, policy=self._policy),
            ca=self,
            opts=pulumi.ResourceOptions(parent=self),
        )


@dataclass(frozen=True, kw_only=True)
class ServerCertificateArgs:
    spec: CertificateSpec
    policy: CertificatePolicy = field(default_factory=CertificatePolicy)


class ServerCertificate(pulumi.ComponentResource):
    """One server's key and certificate."""

    certificate_pem: pulumi.Output[str]
    private_key_pem: pulumi.Output[str]
    """Secret: only in state and in the server's Secret."""
    ca_certificate_pem: pulumi.Output[str]

    def __init__(self, name: str, args: ServerCertificateArgs, *, ca: CertificateAuthority,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hacelery:tls:ServerCertificate", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        spec, policy = args.spec, args.policy
        key = _key(f"{name}-key", child)
        request = tls.CertRequest(
            f"{name}-request",
            private_key_pem=key.private_key_pem,
            dns_names=list(spec.dns_names),
            ip_addresses=list(spec.ip_addresses),
            subject=tls.CertRequestSubjectArgs(
                common_name=spec.common_name, organization=spec.organization),
            opts=child,
        )
        certificate = tls.LocallySignedCert(
            f"{name}-certificate",
            cert_request_pem=request.cert_request_pem,
            ca_private_key_pem=ca._key.private_key_pem,
            ca_cert_pem=ca.certificate_pem,
            validity_period_hours=policy.validity_hours,
            # Replaced at the first `pulumi up` inside the window; clients trust the CA, so a
            # new certificate needs no client change.
            early_renewal_hours=policy.renew_before_hours,
            allowed_uses=list(spec.usages),
            opts=child,
        )
        self.certificate_pem = certificate.cert_pem
        self.private_key_pem = pulumi.Output.secret(key.private_key_pem_pkcs8)
        self.ca_certificate_pem = ca.certificate_pem
        self.register_outputs({
            "certificate_pem": self.certificate_pem,
            "ca_certificate_pem": self.ca_certificate_pem,
        })


def tls_secret_args(
    *, name: str, namespace: str, labels: dict[str, str], certificate: ServerCertificate
) -> dict:
    """A ``kubernetes.io/tls`` Secret with the server's chain files and the CA (for peers that
    verify each other, like RabbitMQ nodes). Pure apart from the outputs it references."""
    return {
        "metadata": k8s.meta.v1.ObjectMetaArgs(name=name, namespace=namespace, labels=labels),
        "type": "kubernetes.io/tls",
        "string_data": {
            CERTIFICATE_KEY: certificate.certificate_pem,
            PRIVATE_KEY_KEY: certificate.private_key_pem,
            CA_KEY: certificate.ca_certificate_pem,
        },
    }


__all__ = [
    "CA_KEY",
    "CERTIFICATE_KEY",
    "PRIVATE_KEY_KEY",
    "CertificateAuthority",
    "CertificateAuthorityArgs",
    "ServerCertificate",
    "ServerCertificateArgs",
    "tls_secret_args",
]
