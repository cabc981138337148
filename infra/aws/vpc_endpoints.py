"""VPC endpoints: image pulls, credentials, secrets and logs stay inside the VPC, not on NAT.

A GPU node that scales up from zero pulls a multi-GB CUDA image. Without endpoints every layer
crosses the NAT gateway, which bills per GB processed; with them ECR's API and registry go over
interface endpoints and the layers (stored in S3) over a free S3 gateway endpoint. STS (Pod
Identity and the AWS SDKs), Secrets Manager (the API key) and CloudWatch Logs (Fluent Bit and the
CloudWatch agent) are the other AWS APIs the nodes and pods call on every start.

Service names are not built by hand: they differ by partition (China uses a ``cn.com.amazonaws``
prefix for some services and not others, aws-cdk#11140), so each one is read from EC2 with
``aws.ec2.get_vpc_endpoint_service`` for the region the provider targets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import pulumi
import pulumi_aws as aws

#: Interface endpoints (service, why). Private DNS makes the regional hostnames resolve to the
#: endpoint ENIs, so nothing in the pods or on the nodes needs reconfiguring.
#: https://docs.aws.amazon.com/AmazonECR/latest/userguide/vpc-endpoints.html (ecr.api, ecr.dkr,
#: and the S3 gateway for layers); https://docs.aws.amazon.com/eks/latest/userguide/private-clusters.html
#: (sts, logs, and the rest of what a node needs without internet access).
INTERFACE_ENDPOINT_SERVICES: Final[tuple[tuple[str, str], ...]] = (
    ("ecr.api", "ECR API: authorization tokens and image manifests"),
    ("ecr.dkr", "ECR registry: the Docker/OCI pull protocol"),
    ("sts", "STS: Pod Identity and SDK credential calls"),
    ("secretsmanager", "Secrets Manager: the service's API key at start-up"),
    ("logs", "CloudWatch Logs: Fluent Bit and the CloudWatch agent"),
)
#: ECR stores image layers in S3; a gateway endpoint serves them at no per-GB charge.
GATEWAY_ENDPOINT_SERVICES: Final = ("s3",)
#: Interface endpoints answer HTTPS only.
HTTPS_PORT: Final = 443


def endpoint_service_name(
    service: str, service_type: str, parent: pulumi.Resource
) -> pulumi.Output[str]:
    """The regional service name of an AWS service's endpoint, as EC2 reports it."""
    return aws.ec2.get_vpc_endpoint_service_output(
        service=service,
        service_type=service_type,
        opts=pulumi.InvokeOutputOptions(parent=parent),
    ).service_name


def create_vpc_endpoints(
    name: str,
    parent: pulumi.Resource,
    *,
    cluster_name: str,
    vpc_id: pulumi.Input[str],
    vpc_cidr: str,
    private_subnet_ids: Sequence[pulumi.Input[str]],
    private_route_table_ids: Sequence[pulumi.Input[str]],
    tags: Mapping[str, str],
) -> list[aws.ec2.VpcEndpoint]:
    """Interface endpoints in every private subnet plus the S3 gateway on the private routes.

    The endpoints' security group admits HTTPS from the VPC's own CIDR and nothing else: the
    nodes and pods (VPC CNI gives pods VPC addresses) are the only clients.
    """
    child = pulumi.ResourceOptions(parent=parent)
    security_group = aws.ec2.SecurityGroup(
        f"{name}-endpoints-sg",
        vpc_id=vpc_id,
        description=f"{cluster_name}: HTTPS from the VPC to its AWS service endpoints",
        ingress=[
            aws.ec2.SecurityGroupIngressArgs(
                description="HTTPS from inside the VPC",
                protocol="tcp",
                from_port=HTTPS_PORT,
                to_port=HTTPS_PORT,
                cidr_blocks=[vpc_cidr],
            )
        ],
        # Endpoints only answer; an empty list removes the default allow-all egress rule.
        egress=[],
        tags={**tags, "Name": f"{cluster_name}-vpc-endpoints"},
        opts=child,
    )
    endpoints: list[aws.ec2.VpcEndpoint] = []
    for service, purpose in INTERFACE_ENDPOINT_SERVICES:
        endpoints.append(
            aws.ec2.VpcEndpoint(
                f"{name}-{service.replace('.', '-')}-endpoint",
                vpc_id=vpc_id,
                service_name=endpoint_service_name(service, "Interface", parent),
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=list(private_subnet_ids),
                security_group_ids=[security_group.id],
                tags={**tags, "Name": f"{cluster_name}-{service}", "purpose": purpose},
                opts=child,
            )
        )
    for service in GATEWAY_ENDPOINT_SERVICES:
        endpoints.append(
            aws.ec2.VpcEndpoint(
                f"{name}-{service}-gateway",
                vpc_id=vpc_id,
                service_name=endpoint_service_name(service, "Gateway", parent),
                vpc_endpoint_type="Gateway",
                route_table_ids=list(private_route_table_ids),
                tags={**tags, "Name": f"{cluster_name}-{service}"},
                opts=child,
            )
        )
    return endpoints
