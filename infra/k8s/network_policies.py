"""Traffic to and from the inference pods: the Service and the NetworkPolicies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import pulumi_kubernetes as k8s

from infra.aws.vpc_endpoints import HTTPS_PORT
from infra.k8s.pod import HTTP_PORT_NAME
from service import contract

ServiceExposure = Literal["internal-nlb", "cluster-ip"]
SERVICE_EXPOSURES: tuple[ServiceExposure, ...] = ("internal-nlb", "cluster-ip")

#: Annotations that hand the Service to the AWS Load Balancer Controller (installed by
#: ``infra.components.load_balancer_controller``) as an internal NLB sending straight to pod IPs.
#: ``type: external`` is what makes the in-tree cloud controller ignore the Service and the AWS
#: Load Balancer Controller reconcile it; ``nlb-target-type: ip`` registers pod IPs (VPC CNI) so
#: traffic skips the extra NodePort hop; ``scheme: internal`` keeps it private (the deprecated
#: ``aws-load-balancer-internal`` is not used); cross-zone is an NLB attribute.
#: https://kubernetes-sigs.github.io/aws-load-balancer-controller/latest/guide/service/nlb/
#: https://kubernetes-sigs.github.io/aws-load-balancer-controller/latest/guide/service/annotations/
INTERNAL_NLB_ANNOTATIONS: Mapping[str, str] = {
    "service.beta.kubernetes.io/aws-load-balancer-type": "external",
    "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip",
    "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
    "service.beta.kubernetes.io/aws-load-balancer-attributes": (
        "load_balancing.cross_zone.enabled=true"
    ),
}

#: Where EKS Pod Identity's node agent serves credentials (link-local, port 80, host network).
POD_IDENTITY_AGENT_CIDR = "169.254.170.23/32"
POD_IDENTITY_AGENT_PORT = 80
#: The instance metadata service; pods never need it (credentials come from Pod Identity).
IMDS_CIDR = "169.254.169.254/32"
#: CoreDNS pods carry this label in EKS (and upstream) for compatibility with kube-dns.
KUBE_DNS_SELECTOR: Mapping[str, str] = {"k8s-app": "kube-dns"}
DNS_PORT = 53


def service_spec(
    exposure: ServiceExposure, selector: Mapping[str, str], port: int
) -> k8s.core.v1.ServiceSpecArgs:
    """The Service in front of the pods: ``port`` forwards to the contract's container port."""
    if exposure not in SERVICE_EXPOSURES:
        raise ValueError(f"service exposure {exposure!r} is not one of {SERVICE_EXPOSURES}")
    return k8s.core.v1.ServiceSpecArgs(
        type="LoadBalancer" if exposure == "internal-nlb" else "ClusterIP",
        selector=dict(selector),
        ports=[
            k8s.core.v1.ServicePortArgs(
                name=HTTP_PORT_NAME, port=port, target_port=HTTP_PORT_NAME, protocol="TCP"
            )
        ],
    )


def service_annotations(exposure: ServiceExposure) -> dict[str, str]:
    """Load-balancer annotations for ``exposure`` (none for a ClusterIP Service)."""
    return dict(INTERNAL_NLB_ANNOTATIONS) if exposure == "internal-nlb" else {}


def default_deny_spec() -> k8s.networking.v1.NetworkPolicySpecArgs:
    """Deny all ingress and egress to every pod of the namespace unless another policy allows it."""
    return k8s.networking.v1.NetworkPolicySpecArgs(
        pod_selector=k8s.meta.v1.LabelSelectorArgs(),
        policy_types=["Ingress", "Egress"],
    )


def allow_service_spec(selector: Mapping[str, str]) -> k8s.networking.v1.NetworkPolicySpecArgs:
    """What the inference pods may do: serve the contract port, resolve names, call AWS over TLS.

    Ingress has no ``from``: clients are the internal NLB (node or VPC addresses) and in-cluster
    callers, and the API key guards the inference routes. Egress: DNS to CoreDNS only, HTTPS to
    AWS APIs (Secrets Manager, S3 via NAT or VPC endpoints) but not the instance metadata service,
    and the Pod Identity agent that hands out the pod's AWS credentials.
    """
    dns_peer = k8s.networking.v1.NetworkPolicyPeerArgs(
        namespace_selector=k8s.meta.v1.LabelSelectorArgs(
            match_labels={"kubernetes.io/metadata.name": "kube-system"}
        ),
        pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=dict(KUBE_DNS_SELECTOR)),
    )
    return k8s.networking.v1.NetworkPolicySpecArgs(
        pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=dict(selector)),
        policy_types=["Ingress", "Egress"],
        ingress=[
            k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                ports=[
                    k8s.networking.v1.NetworkPolicyPortArgs(
                        port=contract.DEFAULT_PORT, protocol="TCP"
                    )
                ]
            )
        ],
        egress=[
            k8s.networking.v1.NetworkPolicyEgressRuleArgs(
                to=[dns_peer],
                ports=[
                    k8s.networking.v1.NetworkPolicyPortArgs(port=DNS_PORT, protocol=protocol)
                    for protocol in ("UDP", "TCP")
                ],
            ),
            k8s.networking.v1.NetworkPolicyEgressRuleArgs(
                to=[
                    k8s.networking.v1.NetworkPolicyPeerArgs(
                        ip_block=k8s.networking.v1.IPBlockArgs(
                            cidr="0.0.0.0/0", except_=[IMDS_CIDR]
                        )
                    )
                ],
                ports=[k8s.networking.v1.NetworkPolicyPortArgs(port=HTTPS_PORT, protocol="TCP")],
            ),
            k8s.networking.v1.NetworkPolicyEgressRuleArgs(
                to=[
                    k8s.networking.v1.NetworkPolicyPeerArgs(
                        ip_block=k8s.networking.v1.IPBlockArgs(cidr=POD_IDENTITY_AGENT_CIDR)
                    )
                ],
                ports=[
                    k8s.networking.v1.NetworkPolicyPortArgs(
                        port=POD_IDENTITY_AGENT_PORT, protocol="TCP"
                    )
                ],
            ),
        ],
    )
