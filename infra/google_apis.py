"""Google APIs inside the VPC: a private Cloud DNS zone that answers every *.googleapis.com name
with private.googleapis.com (199.36.153.8/30), reached through the subnet's Private Google Access.

Why: NetworkPolicy knows addresses, not names. With this zone, "Google APIs on 443" is one /30
(``infra.network_policy.GOOGLE_APIS``), so pghoard's policy can allow Cloud Storage and nothing
else on the internet; without it the public Google ranges (hundreds of changing blocks) or every
address would have to be allowed. The traffic stays on Google's network instead of Cloud NAT
(cloud.google.com/vpc/docs/configure-private-google-access, "Configure DNS": a private zone for
googleapis.com with an A record for private.googleapis.com and a wildcard CNAME; the default
route to the internet gateway carries 199.36.153.8/30).

Owns the zone and its two record sets. Does not own the network or the subnet's Private Google
Access flag (``infra/gke.py`` sets it) and never reads config.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.network_policy import PRIVATE_GOOGLE_APIS_RANGE

DOMAIN = "googleapis.com."
PRIVATE_NAME = f"private.{DOMAIN}"


def private_addresses() -> list[str]:
    """The four addresses of private.googleapis.com."""
    return [str(address) for address in ipaddress.ip_network(PRIVATE_GOOGLE_APIS_RANGE)]


@dataclass(frozen=True, kw_only=True)
class PrivateGoogleApisArgs:
    project: str
    network: pulumi.Input[str]
    """The VPC (id or self link) whose resolvers see the zone."""


def zone_args(args: PrivateGoogleApisArgs) -> gcp.dns.ManagedZoneArgs:
    """Pure: private to the platform's VPC. No DNSSEC: Cloud DNS signs public zones only."""
    return gcp.dns.ManagedZoneArgs(
        project=args.project,
        dns_name=DOMAIN,
        visibility="private",
        description="googleapis.com through Private Google Access (private.googleapis.com)",
        private_visibility_config=gcp.dns.ManagedZonePrivateVisibilityConfigArgs(
            networks=[gcp.dns.ManagedZonePrivateVisibilityConfigNetworkArgs(
                network_url=args.network)]),
        labels={"part-of": "ha-celery"},
    )


class PrivateGoogleApis(pulumi.ComponentResource):
    """*.googleapis.com -> private.googleapis.com, visible inside the VPC only."""

    def __init__(self, name: str, args: PrivateGoogleApisArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hacelery:google_apis:PrivateGoogleApis", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        zone = gcp.dns.ManagedZone(f"{name}-zone", args=zone_args(args), opts=child)
        self.records = [
            gcp.dns.RecordSet(f"{name}-private", project=args.project, managed_zone=zone.name,
                              name=PRIVATE_NAME, type="A", ttl=300, rrdatas=private_addresses(),
                              opts=child),
            gcp.dns.RecordSet(f"{name}-wildcard", project=args.project, managed_zone=zone.name,
                              name=f"*.{DOMAIN}", type="CNAME", ttl=300, rrdatas=[PRIVATE_NAME],
                              opts=child),
        ]
        self.zone_name = zone.name
        self.register_outputs({"zone_name": self.zone_name})
