"""The VPC the cluster runs in: a new one over 2-3 AZs, or an existing one by id."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra.aws.vpc_endpoints import create_vpc_endpoints
from infra.components.types import component_options, type_token
from infra.config import NatPolicy

#: Subnet tags the AWS load balancer integrations look for.
PUBLIC_ELB_TAG = "kubernetes.io/role/elb"
INTERNAL_ELB_TAG = "kubernetes.io/role/internal-elb"


def cluster_tag(cluster_name: str) -> str:
    """The tag key that marks a subnet as usable by one EKS cluster."""
    return f"kubernetes.io/cluster/{cluster_name}"


def plan_subnets(vpc_cidr: str, az_count: int) -> tuple[list[str], list[str]]:
    """Private and public subnet CIDRs for ``az_count`` AZs.

    The VPC is cut into quarters: the first ``az_count`` quarters are the private subnets (pods
    take VPC addresses, so they get the space), the last quarter is cut into sixteenths of which
    the first ``az_count`` are the small public subnets for NAT gateways and load balancers.
    """
    network = ipaddress.IPv4Network(vpc_cidr)
    quarters = list(network.subnets(prefixlen_diff=2))
    private = [str(q) for q in quarters[:az_count]]
    public = [str(s) for s in list(quarters[3].subnets(prefixlen_diff=2))[:az_count]]
    return private, public


@dataclass(frozen=True)
class VpcArgs:
    """Inputs of ``Vpc``."""

    cluster_name: str
    vpc_cidr: str
    az_count: int
    nat_policy: NatPolicy
    tags: Mapping[str, str]
    existing_vpc_id: str | None = None
    existing_private_subnet_ids: Sequence[str] = field(default_factory=tuple)
    existing_public_subnet_ids: Sequence[str] = field(default_factory=tuple)


class Vpc(pulumi.ComponentResource):
    """Private and public subnets for the cluster, with internet egress through NAT.

    A VPC it creates also gets endpoints for ECR, S3, STS, Secrets Manager and CloudWatch Logs
    (``infra.aws.vpc_endpoints``), so image pulls and AWS calls do not cross NAT. An existing VPC is
    used as it is: its owner provides those endpoints (see the README), because a second
    interface endpoint with private DNS for the same service is refused by EC2.

    Outputs: ``vpc_id``, ``private_subnet_ids``, ``public_subnet_ids``.
    """

    vpc_id: pulumi.Output[str]
    private_subnet_ids: pulumi.Output[list[str]]
    public_subnet_ids: pulumi.Output[list[str]]

    def __init__(
        self, name: str, args: VpcArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        component_type = type_token("network", "Vpc")
        super().__init__(component_type, name, None, component_options(component_type, opts))
        if args.existing_vpc_id:
            self._adopt(args)
        else:
            self._create(name, args)
        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "private_subnet_ids": self.private_subnet_ids,
                "public_subnet_ids": self.public_subnet_ids,
            }
        )

    def _adopt(self, args: VpcArgs) -> None:
        # Reading the VPC fails the preview early when the id does not exist in this account.
        vpc = aws.ec2.get_vpc_output(
            id=args.existing_vpc_id, opts=pulumi.InvokeOutputOptions(parent=self)
        )
        self.vpc_id = vpc.id
        self.private_subnet_ids = pulumi.Output.from_input(list(args.existing_private_subnet_ids))
        self.public_subnet_ids = pulumi.Output.from_input(list(args.existing_public_subnet_ids))

    def _create(self, name: str, args: VpcArgs) -> None:
        self._name, self._args = name, args
        self._child = pulumi.ResourceOptions(parent=self)
        self._zones = aws.get_availability_zones_output(
            state="available",
            filters=[{"name": "opt-in-status", "values": ["opt-in-not-required"]}],
            opts=pulumi.InvokeOutputOptions(parent=self),
        )
        vpc, igw = self._vpc()
        private_cidrs, public_cidrs = plan_subnets(args.vpc_cidr, args.az_count)
        public_subnets = self._public_subnets(vpc, igw, public_cidrs)
        nats = self._nat_gateways(igw, public_subnets)
        private_subnets, private_route_tables = self._private_subnets(vpc, nats, private_cidrs)
        create_vpc_endpoints(
            name,
            self,
            cluster_name=args.cluster_name,
            vpc_id=vpc.id,
            vpc_cidr=args.vpc_cidr,
            private_subnet_ids=[s.id for s in private_subnets],
            private_route_table_ids=[rt.id for rt in private_route_tables],
            tags=dict(args.tags),
        )
        self.vpc_id = vpc.id
        self.private_subnet_ids = pulumi.Output.all(*[s.id for s in private_subnets]).apply(list)
        self.public_subnet_ids = pulumi.Output.all(*[s.id for s in public_subnets]).apply(list)

    def _tags(self, name: str, elb_role: str | None = None) -> dict[str, str]:
        """The stack's tags and ``Name`` = ``<cluster>-<name>``; for subnets, the ELB role tags."""
        extra = {}
        if elb_role is not None:
            extra = {cluster_tag(self._args.cluster_name): "shared", elb_role: "1"}
        return {**self._args.tags, **extra, "Name": f"{self._args.cluster_name}-{name}"}

    def _vpc(self) -> tuple[aws.ec2.Vpc, aws.ec2.InternetGateway]:
        """The VPC, its default security group stripped of rules, and the internet gateway."""
        name, args = self._name, self._args
        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.vpc_cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags=self._tags("vpc"),
            opts=self._child,
        )
        # The default security group allows all traffic between its members: strip its rules.
        aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg",
            vpc_id=vpc.id,
            ingress=[],
            egress=[],
            tags=self._tags("default-deny"),
            opts=self._child,
        )
        igw = aws.ec2.InternetGateway(
            f"{name}-igw", vpc_id=vpc.id, tags=self._tags("igw"), opts=self._child
        )
        return vpc, igw

    def _public_subnets(
        self, vpc: aws.ec2.Vpc, igw: aws.ec2.InternetGateway, cidrs: list[str]
    ) -> list[aws.ec2.Subnet]:
        """One public subnet per zone (internet-facing load balancers), routed to the gateway."""
        name = self._name
        route_table = aws.ec2.RouteTable(
            f"{name}-public-rt",
            vpc_id=vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": igw.id}],
            tags=self._tags("public"),
            opts=self._child,
        )
        subnets: list[aws.ec2.Subnet] = []
        for index, cidr in enumerate(cidrs):
            subnet = aws.ec2.Subnet(
                f"{name}-public-{index}",
                vpc_id=vpc.id,
                cidr_block=cidr,
                availability_zone=self._zones.names[index],
                # Load balancers get public addresses explicitly; instances here never need one.
                map_public_ip_on_launch=False,
                tags=self._tags(f"public-{index}", PUBLIC_ELB_TAG),
                opts=self._child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{index}-rta",
                subnet_id=subnet.id,
                route_table_id=route_table.id,
                opts=self._child,
            )
            subnets.append(subnet)
        return subnets

    def _nat_gateways(
        self, igw: aws.ec2.InternetGateway, public_subnets: list[aws.ec2.Subnet]
    ) -> list[aws.ec2.NatGateway]:
        """One NAT gateway (``NatPolicy.SINGLE``) or one per zone, each with its address."""
        name, args = self._name, self._args
        count = 1 if args.nat_policy is NatPolicy.SINGLE else args.az_count
        nats: list[aws.ec2.NatGateway] = []
        for index in range(count):
            eip = aws.ec2.Eip(
                f"{name}-nat-{index}-eip",
                domain="vpc",
                tags=self._tags(f"nat-{index}"),
                opts=self._child,
            )
            nats.append(
                aws.ec2.NatGateway(
                    f"{name}-nat-{index}",
                    allocation_id=eip.id,
                    subnet_id=public_subnets[index].id,
                    tags=self._tags(f"nat-{index}"),
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
                )
            )
        return nats

    def _private_subnets(
        self, vpc: aws.ec2.Vpc, nats: list[aws.ec2.NatGateway], cidrs: list[str]
    ) -> tuple[list[aws.ec2.Subnet], list[aws.ec2.RouteTable]]:
        """One private subnet per zone (nodes, internal load balancers), each routed to a NAT."""
        name = self._name
        subnets: list[aws.ec2.Subnet] = []
        route_tables: list[aws.ec2.RouteTable] = []
        for index, cidr in enumerate(cidrs):
            subnet = aws.ec2.Subnet(
                f"{name}-private-{index}",
                vpc_id=vpc.id,
                cidr_block=cidr,
                availability_zone=self._zones.names[index],
                map_public_ip_on_launch=False,
                tags=self._tags(f"private-{index}", INTERNAL_ELB_TAG),
                opts=self._child,
            )
            route_table = aws.ec2.RouteTable(
                f"{name}-private-{index}-rt",
                vpc_id=vpc.id,
                routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nats[index % len(nats)].id}],
                tags=self._tags(f"private-{index}"),
                opts=self._child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{index}-rta",
                subnet_id=subnet.id,
                route_table_id=route_table.id,
                opts=self._child,
            )
            subnets.append(subnet)
            route_tables.append(route_table)
        return subnets, route_tables
