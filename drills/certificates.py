"""Issue a stack's certificate specs locally, for the drills: a CA and server certificates on disk.

The specs and the policy come from ``infra.certificates`` (what ``infra/tls.py`` issues in the
stack with pulumi-tls): the same subjects, DNS names, IP addresses, usages, key type and validity.
Only the issuer differs: here ``cryptography``, writing PEM files a local RabbitMQ, PostgreSQL or
client can load. ``issue_untrusted_ca`` makes a second, unrelated CA, so a test can prove that a
client which does not trust the stack's CA is refused.

Does not start any server or decide which files a server reads (the drills do).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from infra.certificates import CertificatePolicy, CertificateSpec, ca_spec


@dataclass(frozen=True)
class IssuedCertificate:
    spec: CertificateSpec
    certificate: Path
    key: Path


@dataclass(frozen=True)
class LocalAuthority:
    """A CA on disk and the certificates it issued."""

    ca_certificate: Path
    ca_key: Path
    issued: dict[str, IssuedCertificate]

    def __getitem__(self, name: str) -> IssuedCertificate:
        return self.issued[name]


def _name(spec: CertificateSpec) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, spec.organization),
        x509.NameAttribute(NameOID.COMMON_NAME, spec.common_name),
    ])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    os.chmod(path, 0o600)


def _write_certificate(certificate: x509.Certificate, path: Path) -> None:
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    os.chmod(path, 0o644)


def _extended_usages(spec: CertificateSpec) -> list[x509.ObjectIdentifier]:
    usages = []
    if "server_auth" in spec.usages:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if "client_auth" in spec.usages:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    return usages


def _self_signed_ca(spec: CertificateSpec, policy: CertificatePolicy, now: dt.datetime
                    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(spec)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=policy.ca_validity_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return certificate, key


def issue(
    specs: list[CertificateSpec],
    directory: Path,
    *,
    policy: CertificatePolicy | None = None,
    stack: str = "drill",
    ca: CertificateSpec | None = None,
) -> LocalAuthority:
    """A new CA (``ca.crt``/``ca.key``) and ``<name>.crt``/``<name>.key`` for every spec."""
    policy = policy or CertificatePolicy()
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    authority_spec = ca or ca_spec(stack)
    ca_certificate, ca_key = _self_signed_ca(authority_spec, policy, now)
    paths = LocalAuthority(directory / "ca.crt", directory / "ca.key", {})
    _write_certificate(ca_certificate, paths.ca_certificate)
    _write_key(ca_key, paths.ca_key)
    for spec in specs:
        key = ec.generate_private_key(ec.SECP256R1())
        alternative_names: list[x509.GeneralName] = [x509.DNSName(n) for n in spec.dns_names]
        alternative_names += [x509.IPAddress(ipaddress.ip_address(a)) for a in spec.ip_addresses]
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(spec))
            .issuer_name(ca_certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=policy.validity_days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_encipherment="key_encipherment" in spec.usages,
                content_commitment=False, data_encipherment=False, key_agreement=False,
                key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False),
                critical=True)
            .add_extension(x509.ExtendedKeyUsage(_extended_usages(spec)), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
        )
        if alternative_names:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(alternative_names), critical=False)
        certificate = builder.sign(ca_key, hashes.SHA256())
        issued = IssuedCertificate(spec, directory / f"{spec.name}.crt",
                                   directory / f"{spec.name}.key")
        _write_certificate(certificate, issued.certificate)
        _write_key(key, issued.key)
        paths.issued[spec.name] = issued
    return paths


def issue_untrusted_ca(directory: Path) -> Path:
    """A CA that signed nothing the drills run: a client trusting only it must be refused."""
    authority = issue([], directory, ca=CertificateSpec(name="ca", common_name="someone else",
                                                        usages=("cert_signing",)))
    return authority.ca_certificate


def chown(authority: LocalAuthority, uid: int, gid: int) -> None:
    """Hand every file to the user a server runs as (PostgreSQL refuses keys others can read)."""
    files = [authority.ca_certificate, authority.ca_key]
    for issued in authority.issued.values():
        files += [issued.certificate, issued.key]
    for path in files:
        os.chown(path, uid, gid)
