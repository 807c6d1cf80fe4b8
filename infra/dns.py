"""The platform's public name: a global static IP and a DNSSEC-signed Cloud DNS zone.

Owns: the global IPv4 address the web Ingress binds to (by name), the public managed zone,
the A records for the domain and its wildcard, MX and SPF (TXT) records, a CAA record that only
lets Google's managed certificates be issued for the domain, and any extra records from config.
Exports the name servers and the DS record a user gives the registrar to delegate the domain.

Does not own: the Ingress or certificate (``infra/web.py``) or the registrar side of delegation.
Record names are absolute (trailing dot) and must lie inside the zone: a typo that would create
a record for someone else's domain is refused before anything is registered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.validation import check

RECORD_TYPES = ("A", "AAAA", "CNAME", "MX", "TXT", "CAA", "SRV")
_LABEL = r"(\*|[a-z0-9_]([-a-z0-9_]{0,61}[a-z0-9])?)"
_ABSOLUTE_NAME = re.compile(rf"^({_LABEL}\.)+$")
_MX = re.compile(r"^[0-9]{1,5} \S+\.$")

# Google-managed certificates are issued by Google Trust Services, with Let's Encrypt as its
# documented fallback; nobody else may issue for the domain.
DEFAULT_CAA_ISSUERS = ("pki.goog", "letsencrypt.org")


def check_absolute_name(field: str, name: str) -> None:
    check(
        bool(_ABSOLUTE_NAME.match(name)),
        field,
        name,
        "an absolute DNS name in lower case ending with a dot, e.g. 'www.example.com.'",
    )


def in_zone(name: str, zone_dns_name: str) -> bool:
    """True when ``name`` is the zone apex or a name below it (both absolute)."""
    return name == zone_dns_name or name.endswith("." + zone_dns_name)


@dataclass(frozen=True, kw_only=True)
class DnsRecord:
    """An extra record set. ``name`` is absolute, e.g. ``"api.example.com."``."""

    name: str
    type: str
    rrdatas: tuple[str, ...]
    ttl: int = 300

    def __post_init__(self) -> None:
        check_absolute_name("DnsRecord.name", self.name)
        check(
            self.type in RECORD_TYPES,
            "DnsRecord.type",
            self.type,
            f"one of {', '.join(RECORD_TYPES)}",
        )
        check(len(self.rrdatas) >= 1, "DnsRecord.rrdatas", self.rrdatas, "at least one value")
        check(30 <= self.ttl <= 86400, "DnsRecord.ttl", self.ttl, "30 to 86400 seconds")


@dataclass(frozen=True, kw_only=True)
class DnsArgs:
    """Inputs for PublicDns. Only ``project`` and ``domain`` are required."""

    project: str
    domain: str
    """The zone's DNS name, absolute: ``"example.com."``."""
    ttl: int = 300
    mx: tuple[str, ...] = ()
    """MX values as ``"PRIORITY HOST."``, e.g. ``"10 mx1.example.net."``."""
    spf: str | None = None
    """The SPF policy published as TXT at the apex, e.g. ``"v=spf1 -all"`` for no mail."""
    wildcard: bool = True
    """Also point ``*.DOMAIN.`` at the global IP (preview and tenant hosts)."""
    caa_issuers: tuple[str, ...] = DEFAULT_CAA_ISSUERS
    records: tuple[DnsRecord, ...] = ()
    protect: bool = True
    """True: Pulumi refuses to delete or replace the zone (a new zone has new name servers and
    DNSSEC keys, so the registrar's delegation and DS record would stop matching)."""

    def __post_init__(self) -> None:
        check_absolute_name("DnsArgs.domain", self.domain)
        check("*" not in self.domain, "DnsArgs.domain", self.domain, "a name without '*'")
        check(30 <= self.ttl <= 86400, "DnsArgs.ttl", self.ttl, "30 to 86400 seconds")
        for value in self.mx:
            check(
                bool(_MX.match(value)),
                "DnsArgs.mx",
                value,
                "'PRIORITY HOST.' with an absolute host, e.g. '10 mx1.example.net.'",
            )
        if self.spf is not None:
            check(
                self.spf.startswith("v=spf1"),
                "DnsArgs.spf",
                self.spf,
                "an SPF policy starting with 'v=spf1', e.g. 'v=spf1 include:_spf.google.com ~all'",
            )
            check(len(self.spf) <= 255, "DnsArgs.spf", self.spf, "at most 255 characters")
        seen = set()
        for index, record in enumerate(self.records):
            check(
                in_zone(record.name, self.domain),
                f"DnsArgs.records[{index}].name",
                record.name,
                f"a name inside the zone {self.domain!r} (the apex or '<label>.{self.domain}')",
            )
            key = (record.name, record.type)
            check(
                key not in seen,
                f"DnsArgs.records[{index}]",
                f"{record.name} {record.type}",
                "each name and type once",
            )
            seen.add(key)
        managed = {(self.domain, "A"), (self.domain, "CAA")}
        if self.wildcard:
            managed.add((f"*.{self.domain}", "A"))
        if self.mx:
            managed.add((self.domain, "MX"))
        if self.spf:
            managed.add((self.domain, "TXT"))
        for key in seen & managed:
            check(
                False,
                "DnsArgs.records",
                f"{key[0]} {key[1]}",
                "a record the component does not already manage (apex A/CAA/MX/TXT, wildcard A)",
            )

    @property
    def zone_name(self) -> str:
        """Cloud DNS zone resource name derived from the domain: ``example-com``."""
        return self.domain.rstrip(".").replace(".", "-")


def txt_value(text: str) -> str:
    """Quote a TXT value the way Cloud DNS expects (255-character strings, escaped quotes)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return " ".join(f'"{escaped[i : i + 255]}"' for i in range(0, len(escaped), 255))


def planned_records(args: DnsArgs, address: pulumi.Input[str]) -> list[tuple]:
    """Every record set as (suffix, name, type, rrdatas, ttl). Pure: tests call it directly."""
    records: list[tuple] = [("apex-a", args.domain, "A", [address], args.ttl)]
    if args.wildcard:
        records.append(("wildcard-a", f"*.{args.domain}", "A", [address], args.ttl))
    if args.mx:
        records.append(("mx", args.domain, "MX", list(args.mx), args.ttl))
    if args.spf:
        records.append(("spf", args.domain, "TXT", [txt_value(args.spf)], args.ttl))
    if args.caa_issuers:
        records.append(
            (
                "caa",
                args.domain,
                "CAA",
                [f'0 issue "{issuer}"' for issuer in args.caa_issuers],
                args.ttl,
            )
        )
    for record in args.records:
        suffix = (
            record.name.rstrip(".").replace("*", "wildcard").replace(".", "-")
            + "-"
            + record.type.lower()
        )
        rrdatas = [
            txt_value(v) if record.type == "TXT" and not v.startswith('"') else v
            for v in record.rrdatas
        ]
        records.append((suffix, record.name, record.type, rrdatas, record.ttl))
    return records


class PublicDns(pulumi.ComponentResource):
    """A global static IP and the DNSSEC-signed public zone that points the domain at it."""

    address: pulumi.Output[str]
    """The global IPv4 address."""
    address_name: pulumi.Output[str]
    """The address resource's name, for the Ingress annotation `global-static-ip-name`."""
    name_servers: pulumi.Output[list[str]]
    """Give these to the registrar to delegate the domain."""
    ds_record: pulumi.Output[str]
    """The DS record for the registrar, completing the DNSSEC chain of trust."""
    domain: pulumi.Output[str]
    """The domain without the trailing dot (for certificates and Ingress hosts)."""

    def __init__(
        self, name: str, args: DnsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("hacelery:dns:PublicDns", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        address = gcp.compute.GlobalAddress(
            f"{name}-ip",
            project=args.project,
            name=f"{name}-ip",
            address_type="EXTERNAL",
            ip_version="IPV4",
            description=f"Web entry point of {args.domain}",
            # The description is ForceNew (terraform-provider-google compute/
            # resource_compute_global_address.go) and names the domain: a new domain must not
            # give the site a new IP.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["description"]),
        )
        zone = gcp.dns.ManagedZone(
            f"{name}-zone",
            project=args.project,
            name=args.zone_name,
            dns_name=args.domain,
            visibility="public",
            description=f"Public zone of {args.domain}",
            # DNSSEC signs every answer so a resolver can detect spoofed records; NSEC3 keeps
            # the zone's names from being walked.
            dnssec_config=gcp.dns.ManagedZoneDnssecConfigArgs(state="on", non_existence="nsec3"),
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        for suffix, record_name, record_type, rrdatas, ttl in planned_records(
            args, address.address
        ):
            gcp.dns.RecordSet(
                f"{name}-{suffix}",
                project=args.project,
                managed_zone=zone.name,
                name=record_name,
                type=record_type,
                ttl=ttl,
                rrdatas=rrdatas,
                opts=child,
            )

        keys = gcp.dns.get_keys_output(
            managed_zone=zone.id, project=args.project, opts=pulumi.InvokeOutputOptions(parent=self)
        )
        self.address = address.address
        self.address_name = address.name
        self.name_servers = zone.name_servers
        self.ds_record = keys.key_signing_keys.apply(lambda ksks: ksks[0].ds_record if ksks else "")
        self.domain = pulumi.Output.from_input(args.domain.rstrip("."))
        self.register_outputs(
            {
                "address": self.address,
                "address_name": self.address_name,
                "name_servers": self.name_servers,
                "ds_record": self.ds_record,
                "domain": self.domain,
            }
        )
