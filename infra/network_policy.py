"""Who may talk to whom: the peers NetworkPolicies name, and the one builder every workload uses.

Owns ``Peer`` (a destination or source: pods by label, optionally in another namespace, or
address blocks, with the ports and the reason), the peers every platform shares (kube-dns, the
GKE metadata server, Google APIs through Private Google Access, the load balancer's ranges, the
Kubernetes API) and ``network_policy_args``, which always lists both directions in
``policyTypes``: a workload that names no egress peer may send nothing (replies to connections it
accepted are always allowed: NetworkPolicy is stateful).

Each workload's module lists its own peers in one place (``*_egress`` / ``*_ingress``
functions), so adding one (a metrics scraper, a TLS port) is one entry there.

Does not decide which workload needs what (the workload modules do) and creates no resource.
References for the GKE specifics are next to each peer.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra.validation import check

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
"""Set by the API server on every namespace (immutable): a namespace selector that cannot be
spoofed by relabelling."""


@dataclass(frozen=True)
class Port:
    port: int
    protocol: str = "TCP"
    end_port: int | None = None

    def __post_init__(self) -> None:
        check(1 <= self.port <= 65535, "Port.port", self.port, "a port number 1-65535")
        check(self.protocol in ("TCP", "UDP", "SCTP"), "Port.protocol", self.protocol,
              "TCP, UDP or SCTP")
        check(self.end_port is None or self.port < self.end_port <= 65535, "Port.end_port",
              self.end_port, "None or a port above `port`")


def tcp(port: int, end_port: int | None = None) -> Port:
    return Port(port, "TCP", end_port)


@dataclass(frozen=True, kw_only=True)
class Peer:
    """One kind of traffic a workload may send (egress) or accept (ingress)."""

    purpose: str
    """Why this peer is allowed (for reviews; not written to the object)."""
    ports: tuple[Port, ...] = ()
    """Empty: every port (used for nothing in the platform; say why if you do)."""
    pod_labels: Mapping[str, str] | None = None
    """Pods with these labels; with ``namespace`` None, in the policy's own namespace."""
    namespace: str | None = None
    """The pods' namespace (by its immutable name label)."""
    cidrs: tuple[str, ...] = ()
    """Address blocks (instead of pods)."""
    except_cidrs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check(bool(self.pod_labels is not None or self.namespace or self.cidrs), "Peer",
              self.purpose, "pods (pod_labels / namespace) or address blocks (cidrs)")
        check(not (self.cidrs and (self.pod_labels is not None or self.namespace)), "Peer.cidrs",
              self.cidrs, "either address blocks or pods, not both in one peer")
        for cidr in (*self.cidrs, *self.except_cidrs):
            try:
                ipaddress.ip_network(cidr)
            except ValueError:
                check(False, "Peer.cidrs", cidr, "an address block such as 10.0.0.0/8")

    def peers(self) -> list[k8s.networking.v1.NetworkPolicyPeerArgs]:
        if self.cidrs:
            return [k8s.networking.v1.NetworkPolicyPeerArgs(ip_block=k8s.networking.v1.IPBlockArgs(
                cidr=cidr, except_=list(self.except_cidrs) or None)) for cidr in self.cidrs]
        return [k8s.networking.v1.NetworkPolicyPeerArgs(
            pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=dict(self.pod_labels or {})),
            namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                match_labels={NAMESPACE_NAME_LABEL: self.namespace}) if self.namespace else None,
        )]

    def port_args(self) -> list[k8s.networking.v1.NetworkPolicyPortArgs] | None:
        if not self.ports:
            return None
        return [k8s.networking.v1.NetworkPolicyPortArgs(
            protocol=port.protocol, port=port.port, end_port=port.end_port)
            for port in self.ports]

    def egress_rule(self) -> k8s.networking.v1.NetworkPolicyEgressRuleArgs:
        return k8s.networking.v1.NetworkPolicyEgressRuleArgs(to=self.peers(),
                                                            ports=self.port_args())

    def ingress_rule(self) -> k8s.networking.v1.NetworkPolicyIngressRuleArgs:
        return k8s.networking.v1.NetworkPolicyIngressRuleArgs(from_=self.peers(),
                                                             ports=self.port_args())


# --------------------------------------------------------------------------- shared peers

KUBE_DNS = Peer(
    purpose="name resolution through kube-dns only (no other resolver, no DNS tunnelling out)",
    namespace="kube-system",
    # kube-dns on GKE and CoreDNS on kind/minikube both carry k8s-app=kube-dns. Under Dataplane
    # V2 the Service's ClusterIP is translated to the pod before policy is applied, so the pod
    # selector matches (cloud.google.com/kubernetes-engine/docs/how-to/network-policy
    # "egress to kube-dns"). NodeLocal DNSCache is not enabled on the platform's clusters.
    pod_labels={"k8s-app": "kube-dns"},
    ports=(Port(53, "UDP"), Port(53, "TCP")),
)

GKE_METADATA_SERVER = Peer(
    purpose="Workload Identity tokens from the GKE metadata server",
    # GKE intercepts 169.254.169.254:80 and serves it from the node's gke-metadata-server; a
    # policy must allow exactly that (cloud.google.com/kubernetes-engine/docs/how-to/
    # workload-identity "If your cluster uses network policy, you must allow egress to
    # 169.254.169.254/32 on port 80").
    cidrs=("169.254.169.254/32",),
    ports=(tcp(80),),
)

PRIVATE_GOOGLE_APIS_RANGE = "199.36.153.8/30"
"""private.googleapis.com: the subnet's Private Google Access serves every *.googleapis.com API
there once DNS points the names at it (``infra/google_apis.py``)."""

GOOGLE_APIS = Peer(
    purpose="Google APIs (Cloud Storage) over HTTPS through Private Google Access",
    # Not the public Google ranges (hundreds of blocks that change) and not Cloud NAT: the VPC's
    # private DNS zone resolves *.googleapis.com to private.googleapis.com, so one /30 on 443
    # is every Google API and nothing else (cloud.google.com/vpc/docs/
    # configure-private-google-access "Domain options": private.googleapis.com
    # 199.36.153.8/30).
    cidrs=(PRIVATE_GOOGLE_APIS_RANGE,),
    ports=(tcp(443),),
)

GOOGLE_LOAD_BALANCER_RANGES = ("130.211.0.0/22", "35.191.0.0/16")
"""Where Google's external Application Load Balancer (its proxies and health checks) connects
from to container-native (NEG) backends (cloud.google.com/load-balancing/docs/health-check-
concepts#ip-ranges; GKE Ingress docs: allow them in network policies)."""


def kubernetes_api(cidrs: Sequence[str]) -> Peer:
    """The Kubernetes API server. On GKE the `kubernetes` Service is translated to the control
    plane's private endpoint (inside ``master_ipv4_cidr``) before policy applies; elsewhere
    (kind, minikube) its address is not known to the program, so any address on 443/6443."""
    return Peer(purpose="the Kubernetes API",
                cidrs=tuple(cidrs) or ("0.0.0.0/0",),
                ports=(tcp(443),) if cidrs else (tcp(443), tcp(6443)))


@dataclass(frozen=True, kw_only=True)
class MetricsScraper:
    """The pods that scrape metrics (GKE's managed collectors, or a Prometheus on ``local``).
    Each workload admits them to its own metrics port and to nothing else (``peer``)."""

    namespace: str
    pod_labels: Mapping[str, str]

    def __post_init__(self) -> None:
        check(bool(self.namespace), "MetricsScraper.namespace", self.namespace,
              "the scraper's namespace")
        check(bool(self.pod_labels), "MetricsScraper.pod_labels", self.pod_labels,
              "the scraper's pod labels (an empty selector admits every pod of the namespace)")

    def peer(self, port: int) -> Peer:
        return Peer(purpose="the metrics scraper, on the metrics port only",
                    namespace=self.namespace, pod_labels=dict(self.pod_labels),
                    ports=(tcp(port),))


# --------------------------------------------------------------------------- the object


_INTERNAL_RANGES = tuple(ipaddress.ip_network(block) for block in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16",
    "127.0.0.0/8", "fc00::/7", "fe80::/10", "::1/128"))


@dataclass(frozen=True, kw_only=True)
class ExternalEgress:
    """An address block outside the cluster that an app workload may call (an API your tasks
    use). NetworkPolicy has no host names: give the service's published ranges."""

    cidr: str
    ports: tuple[int, ...] = (443,)

    def __post_init__(self) -> None:
        try:
            network = ipaddress.ip_network(self.cidr)
        except ValueError:
            check(False, "ExternalEgress.cidr", self.cidr,
                  "an address block such as 203.0.113.0/24 (host names are not possible)")
            return
        check(not any(network.overlaps(internal) for internal in _INTERNAL_RANGES
                      if internal.version == network.version),
              "ExternalEgress.cidr", self.cidr,
              "a block outside private, link-local and loopback ranges (in-cluster peers and "
              "the metadata server are the platform's to allow; 0.0.0.0/0 would allow "
              "everything)")
        check(bool(self.ports) and all(1 <= port <= 65535 for port in self.ports),
              "ExternalEgress.ports", self.ports, "one or more TCP ports, e.g. [443]")

    def peer(self) -> Peer:
        return Peer(purpose=f"calls to {self.cidr} (configured)", cidrs=(self.cidr,),
                    ports=tuple(tcp(port) for port in self.ports))


def network_policy_args(name: str, namespace: pulumi.Input[str], labels: Mapping[str, str],
                        pod_selector: Mapping[str, str], *, ingress: Sequence[Peer] = (),
                        egress: Sequence[Peer] = ()) -> k8s.networking.v1.NetworkPolicyInitArgs:
    """Pure: both directions in policyTypes, so an empty list means nothing in that direction."""
    return k8s.networking.v1.NetworkPolicyInitArgs(
        metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=namespace, labels=dict(labels)),
        spec=k8s.networking.v1.NetworkPolicySpecArgs(
            pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=dict(pod_selector)),
            policy_types=["Ingress", "Egress"],
            ingress=[peer.ingress_rule() for peer in ingress],
            egress=[peer.egress_rule() for peer in egress],
        ),
    )
