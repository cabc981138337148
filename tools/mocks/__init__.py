"""Pulumi mocks that answer like AWS, Kubernetes and Docker would, and record every resource.

``ProgramMocks`` gives each resource the computed outputs the program reads later (ARNs in the
right service format, ECR repository URLs, the EKS endpoint and CA, node group ASG names, image
digests derived from the build inputs ...) and answers the provider functions the program calls.
``RecordingMonitor`` keeps every registration - URN, type, name, parent and inputs - for tests,
the plan tool and the manifest renderer. Values are derived from hashes of names and inputs, never
random, so two runs of the same program give the same inventory.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import pulumi
import yaml
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs

from infra.config import partition_of
from tools.mocks.simulated_account import SimulatedAccount

ACCOUNT_ID: Final = "123456789012"
DEPLOYER_ROLE: Final = "PulumiDeployer"
#: A syntactically valid certificate: what EKS returns base64-encoded as certificateAuthority.data.
_FAKE_CA_PEM: Final = (
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBszCCAVmgAwIBAgIUMockMockMockMockMockMockMockMockwCgYIKoZIzj0EAwIw\n"
    "-----END CERTIFICATE-----\n"
)


#: Endpoint types EC2 offers per AWS service, for the services the program looks up. S3 has both
#: (https://docs.aws.amazon.com/vpc/latest/privatelink/vpc-endpoints-s3.html); the others are
#: interface-only (https://docs.aws.amazon.com/vpc/latest/privatelink/aws-services-privatelink-support.html).
_ENDPOINT_SERVICE_TYPES: Final[Mapping[str, tuple[str, ...]]] = {
    "s3": ("Gateway", "Interface"),
    "dynamodb": ("Gateway", "Interface"),
    "ecr.api": ("Interface",),
    "ecr.dkr": ("Interface",),
    "sts": ("Interface",),
    "secretsmanager": ("Interface",),
    "logs": ("Interface",),
}


def _hex(*parts: object, length: int = 17) -> str:
    text = "\0".join(str(p) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _uuid(*parts: object) -> str:
    h = _hex(*parts, length=32)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _alnum(*parts: object, length: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    digest = hashlib.sha512("\0".join(str(p) for p in parts).encode()).digest()
    return "".join(alphabet[b % len(alphabet)] for b in digest[:length])


def _autoname(name: str, *parts: object) -> str:
    """Pulumi's auto-naming: the logical name plus seven characters."""
    return f"{name}-{_hex(name, *parts, length=7)}"


class MockRejectedError(ValueError):
    """What the real service would answer with an error for these inputs."""


def _check_scraper(inputs: Mapping[str, Any]) -> None:
    """CreateScraper rules: two subnets at least, and a scrape configuration AMP can parse.

    https://docs.aws.amazon.com/prometheus/latest/userguide/AMP-collector-how-to.html ("you must
    include at least two subnets in at least two Availability Zones").
    """
    eks = ((inputs.get("source") or {}).get("eks")) or {}
    subnets = list(eks.get("subnetIds") or [])
    if len(subnets) < 2:
        raise MockRejectedError(f"ValidationException: a scraper needs 2+ subnets, got {subnets}")
    if not re.match(r"^arn:aws[a-z-]*:eks:", str(eks.get("clusterArn", ""))):
        raise MockRejectedError("ValidationException: source.eks.clusterArn is not a cluster ARN")

    try:
        document = yaml.safe_load(str(inputs.get("scrapeConfiguration") or ""))
    except yaml.YAMLError as exc:
        raise MockRejectedError(f"ValidationException: scrape configuration: {exc}") from None
    if not isinstance(document, dict) or not document.get("scrape_configs"):
        raise MockRejectedError("ValidationException: scrape configuration has no scrape_configs")
    workspace = str(((inputs.get("destination") or {}).get("amp") or {}).get("workspaceArn", ""))
    if ":aps:" not in workspace or ":workspace/" not in workspace:
        raise MockRejectedError(f"ValidationException: {workspace!r} is not a workspace ARN")


@dataclass(frozen=True)
class Registration:
    """One resource the program declared (or read), as the engine saw it."""

    urn: str
    type: str
    name: str
    parent_urn: str | None
    inputs: Mapping[str, Any]
    #: Inputs merged with the computed outputs the mocks answered.
    outputs: Mapping[str, Any] = field(default_factory=dict)
    #: The physical id the mocks gave the resource.
    id: str = ""
    #: URNs this resource explicitly depends on (depends_on, expanded by the SDK).
    dependencies: tuple[str, ...] = ()
    protect: bool = False
    #: The resource asked to be deleted before its replacement is created.
    delete_before_replace: bool = False
    read: bool = False
    custom: bool = True

    @property
    def parent_name(self) -> str | None:
        """Logical name of the parent (None for resources directly under the stack)."""
        if self.parent_urn is None or self.parent_urn.split("::")[2] == "pulumi:pulumi:Stack":
            return None
        return self.parent_urn.rsplit("::", 1)[-1]


class RecordingMonitor(MockMonitor):
    """The SDK's mock monitor, also keeping each registration's parent and inputs in order."""

    def __init__(self, mocks: ProgramMocks) -> None:
        super().__init__(mocks)
        self.registrations: list[Registration] = []

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type != "pulumi:pulumi:Stack":
            self._record(request, response, read=False)
        return response

    def ReadResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        response = super().ReadResource(request)  # type: ignore[no-untyped-call]
        self._record(request, response, read=True)
        return response

    def _record(self, request: Any, response: Any, read: bool) -> None:
        props = request.properties if read else request.object
        outputs = response.properties if read else response.object
        inputs = rpc.deserialize_properties(props)
        answered = rpc.deserialize_properties(outputs)
        account = self.mocks.account if isinstance(self.mocks, ProgramMocks) else None
        if account is not None:
            # Raises what AWS would answer; the registration, and so the run, fails with it.
            account.on_register(response.urn, request.type, inputs, answered, read=read)
        self.registrations.append(
            Registration(
                urn=response.urn,
                type=request.type,
                name=request.name,
                parent_urn=request.parent or None,
                inputs=inputs,
                outputs=answered,
                id=str(getattr(response, "id", "") or request.name),
                dependencies=tuple(getattr(request, "dependencies", ()) or ()),
                protect=bool(getattr(request, "protect", False)),
                delete_before_replace=bool(getattr(request, "deleteBeforeReplace", False)),
                read=read,
                custom=bool(getattr(request, "custom", True)),
            )
        )


@dataclass
class ProgramMocks(pulumi.runtime.Mocks):
    """Realistic answers for every resource type and function the program uses.

    ``stack_outputs`` maps a referenced stack name to the outputs a StackReference to it sees
    (pr-* stacks read the dev stack's cluster this way).
    """

    region: str = "us-west-2"
    account_id: str = ACCOUNT_ID
    stack_outputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    secret_outputs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: When given, every creation is checked against (and recorded in) this account's state.
    account: SimulatedAccount | None = None

    @property
    def caller_role(self) -> str:
        """The IAM role whose session runs `pulumi`."""
        return self.account.caller_role if self.account is not None else DEPLOYER_ROLE

    @property
    def partition(self) -> str:
        """The partition of the region: every ARN the mocks answer carries it, as AWS's do.

        https://docs.aws.amazon.com/IAM/latest/UserGuide/reference-arns.html (aws, aws-cn,
        aws-us-gov).
        """
        return partition_of(self.region)

    # ------------------------------------------------------------------ functions
    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        function, a = args.token, args.args
        acct, region = self.account_id, self.region
        answers: dict[str, Any]
        if function == "aws:index/getCallerIdentity:getCallerIdentity":
            answers = {
                "accountId": acct,
                "arn": (
                    f"arn:{self.partition}:sts::{acct}:assumed-role/{self.caller_role}"
                    "/pulumi-session"
                ),
                "userId": f"AROA{_hex('caller', length=17).upper()}:pulumi-session",
                "id": acct,
            }
        elif function == "aws:iam/getSessionContext:getSessionContext":
            arn = str(a.get("arn", ""))
            role = arn.split("/")[1] if ":assumed-role/" in arn else self.caller_role
            answers = {
                "arn": arn,
                "issuerArn": f"arn:{self.partition}:iam::{acct}:role/{role}",
                "issuerId": f"AROA{_hex(role).upper()}",
                "issuerName": role,
                "sessionName": "pulumi-session",
                "id": arn,
            }
        elif function == "aws:index/getRegion:getRegion":
            answers = {
                "name": region,
                "region": region,
                "endpoint": f"ec2.{region}.amazonaws.com",
                "description": region,
                "id": region,
            }
        elif function == "aws:index/getPartition:getPartition":
            china = self.partition == "aws-cn"
            answers = {
                "partition": self.partition,
                "dnsSuffix": "amazonaws.com.cn" if china else "amazonaws.com",
                "reverseDnsPrefix": "cn.com.amazonaws" if china else "com.amazonaws",
                "id": self.partition,
            }
        elif function == "aws:index/getAvailabilityZones:getAvailabilityZones":
            answers = {
                "names": [f"{region}{s}" for s in "abcd"],
                "zoneIds": [f"usw2-az{i}" for i in range(1, 5)],
                "groupNames": [region] * 4,
                "id": region,
            }
        elif function == "aws:ecr/getAuthorizationToken:getAuthorizationToken":
            registry = a.get("registryId") or acct
            password = _alnum("ecr-token", registry, length=64)
            answers = {
                "authorizationToken": base64.b64encode(f"AWS:{password}".encode()).decode(),
                "expiresAt": "2030-01-01T00:00:00Z",
                "password": password,
                "proxyEndpoint": f"https://{registry}.dkr.ecr.{region}.amazonaws.com",
                "userName": "AWS",
                "id": region,
            }
        elif function == "aws:eks/getAddonVersion:getAddonVersion":
            answers = {
                "addonName": a["addonName"],
                "kubernetesVersion": a["kubernetesVersion"],
                "version": f"v1.{len(a['addonName'])}.0-eksbuild.1",
                "id": a["addonName"],
            }
        elif function == "aws:ec2/getVpc:getVpc":
            vpc_id = a.get("id") or f"vpc-{_hex('vpc')}"
            answers = {
                "id": vpc_id,
                "arn": f"arn:{self.partition}:ec2:{region}:{acct}:vpc/{vpc_id}",
                "cidrBlock": "10.0.0.0/16",
                "state": "available",
            }
        elif function == "aws:ec2/getVpcEndpointService:getVpcEndpointService":
            answers = self._endpoint_service(str(a.get("service")), str(a.get("serviceType")))
        elif function == "aws:ssm/getParameter:getParameter":
            answers = {
                "name": a["name"],
                "value": f"ami-{_hex(a['name'])}",
                "type": "String",
                "arn": f"arn:{self.partition}:ssm:{region}:{acct}:parameter{a['name']}",
                "id": a["name"],
            }
        else:
            raise NotImplementedError(f"ProgramMocks has no answer for function {function}")
        return answers, []

    def _endpoint_service(self, service: str, service_type: str) -> dict[str, Any]:
        """What ``DescribeVpcEndpointServices`` finds for an AWS service of one endpoint type.

        Like EC2, an unknown service or a type it is not offered as (STS has no gateway) finds
        nothing, which the data source reports as an error. The name is the commercial and
        GovCloud form; the program never builds it itself, so a region whose names differ
        (China) needs no second copy of EC2's catalogue here.
        """
        types = _ENDPOINT_SERVICE_TYPES.get(service, ())
        if service_type not in types:
            raise ValueError(
                f"no matching VPC endpoint service for {service!r} of type {service_type!r} "
                f"in {self.region}"
            )
        name = f"com.amazonaws.{self.region}.{service}"
        return {
            "service": service,
            "serviceName": name,
            "serviceType": service_type,
            "serviceId": f"vpce-svc-{_hex(name)}",
            "privateDnsName": f"{service}.{self.region}.amazonaws.com",
            "acceptanceRequired": False,
            "id": name,
        }

    # ------------------------------------------------------------------ resources
    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        inputs = dict(args.inputs)
        typ, name = args.typ, args.name
        outputs = self._outputs(typ, name, inputs, args.resource_id)
        rid = outputs.pop("__id", None) or f"{name}-{_hex(typ, name, length=8)}"
        return rid, {**inputs, **outputs}

    def _arn(self, service: str, resource: str) -> str:
        return f"arn:{self.partition}:{service}:{self.region}:{self.account_id}:{resource}"

    def _outputs(
        self, typ: str, name: str, inputs: dict[str, Any], resource_id: str | None
    ) -> dict[str, Any]:
        acct, region = self.account_id, self.region
        if typ == "pulumi:pulumi:StackReference":
            target = str(resource_id or inputs.get("name") or name)
            short = target.rsplit("/", 1)[-1]
            outputs = self.stack_outputs.get(target) or self.stack_outputs.get(short)
            if outputs is None:
                raise KeyError(f"no outputs mocked for referenced stack {target!r}")
            secret_names = list(
                self.secret_outputs.get(target) or self.secret_outputs.get(short) or ()
            )
            return {
                "__id": target,
                "name": target,
                "outputs": dict(outputs),
                "secretOutputNames": secret_names,
            }
        if typ.startswith("pulumi:providers:"):
            return {"__id": _uuid(typ, name)}
        if typ == "aws:ec2/vpc:Vpc":
            vid = f"vpc-{_hex(name)}"
            return {
                "__id": vid,
                "arn": self._arn("ec2", f"vpc/{vid}"),
                "defaultSecurityGroupId": f"sg-{_hex(name, 'default')}",
                "mainRouteTableId": f"rtb-{_hex(name, 'main')}",
                "ownerId": acct,
            }
        prefixes = {
            "aws:ec2/subnet:Subnet": ("subnet", "subnet"),
            "aws:ec2/internetGateway:InternetGateway": ("igw", "internet-gateway"),
            "aws:ec2/natGateway:NatGateway": ("nat", "natgateway"),
            "aws:ec2/routeTable:RouteTable": ("rtb", "route-table"),
            "aws:ec2/routeTableAssociation:RouteTableAssociation": ("rtbassoc", None),
            "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": ("sg", "security-group"),
            "aws:ec2/launchTemplate:LaunchTemplate": ("lt", "launch-template"),
            "aws:ec2/securityGroup:SecurityGroup": ("sg", "security-group"),
            "aws:ec2/vpcEndpoint:VpcEndpoint": ("vpce", "vpc-endpoint"),
        }
        if typ in prefixes:
            prefix, kind = prefixes[typ]
            rid = f"{prefix}-{_hex(typ, name)}"
            out: dict[str, Any] = {"__id": rid}
            if kind is not None:
                out["arn"] = self._arn("ec2", f"{kind}/{rid}")
            if typ == "aws:ec2/launchTemplate:LaunchTemplate":
                out.update({"latestVersion": 1, "defaultVersion": 1})
            return out
        if typ == "aws:ec2/eip:Eip":
            octets = [int(_hex(name, i, length=2), 16) for i in range(2)]
            return {
                "__id": f"eipalloc-{_hex(name)}",
                "allocationId": f"eipalloc-{_hex(name)}",
                "publicIp": f"52.10.{octets[0]}.{octets[1]}",
            }
        if typ == "aws:kms/key:Key":
            key_id = _uuid("kms", name)
            return {"__id": key_id, "keyId": key_id, "arn": self._arn("kms", f"key/{key_id}")}
        if typ == "aws:kms/alias:Alias":
            alias = str(inputs.get("name") or f"alias/{name}")
            return {"__id": alias, "arn": self._arn("kms", alias)}
        if typ == "aws:iam/role:Role":
            role = str(inputs.get("name") or _autoname(name))
            return {
                "__id": role,
                "name": role,
                "arn": f"arn:{self.partition}:iam::{acct}:role/{role}",
                "uniqueId": f"AROA{_hex(role).upper()}",
            }
        if typ == "aws:iam/rolePolicy:RolePolicy":
            return {"__id": f"{inputs.get('role')}:{_autoname(name)}", "name": _autoname(name)}
        if typ == "aws:iam/rolePolicyAttachment:RolePolicyAttachment":
            return {"__id": f"{inputs.get('role')}-{_hex(name, length=8)}"}
        if typ == "aws:cloudwatch/logGroup:LogGroup":
            group = str(inputs.get("name") or _autoname(name))
            return {"__id": group, "name": group, "arn": self._arn("logs", f"log-group:{group}")}
        if typ == "aws:eks/cluster:Cluster":
            cluster = str(inputs.get("name") or _autoname(name))
            endpoint_id = _hex("eks", cluster, length=32).upper()
            return {
                "__id": cluster,
                "name": cluster,
                "arn": self._arn("eks", f"cluster/{cluster}"),
                "endpoint": f"https://{endpoint_id}.gr7.{region}.eks.amazonaws.com",
                "certificateAuthority": {"data": base64.b64encode(_FAKE_CA_PEM.encode()).decode()},
                "identities": [
                    {
                        "oidcs": [
                            {"issuer": f"https://oidc.eks.{region}.amazonaws.com/id/{endpoint_id}"}
                        ]
                    }
                ],
                "platformVersion": "eks.1",
                "status": "ACTIVE",
                "clusterId": _uuid("cluster", cluster),
                "vpcConfig": {
                    **(inputs.get("vpcConfig") or {}),
                    "clusterSecurityGroupId": f"sg-{_hex('cluster-sg', cluster)}",
                    "vpcId": f"vpc-{_hex('cluster-vpc', cluster)}",
                },
                "version": inputs.get("version") or "1.33",
            }
        if typ == "aws:eks/nodeGroup:NodeGroup":
            group = str(inputs.get("nodeGroupName") or _autoname(name))
            cluster = inputs.get("clusterName", "cluster")
            uid = _uuid("ng", cluster, group)
            return {
                "__id": f"{cluster}:{group}",
                "nodeGroupName": group,
                "arn": self._arn("eks", f"nodegroup/{cluster}/{group}/{uid}"),
                "resources": [
                    {
                        "autoscalingGroups": [{"name": f"eks-{group}-{uid}"}],
                        "remoteAccessSecurityGroupId": "",
                    }
                ],
                "status": "ACTIVE",
            }
        if typ == "aws:eks/addon:Addon":
            addon, eks = inputs.get("addonName"), inputs.get("clusterName")
            return {
                "__id": f"{eks}:{addon}",
                "arn": self._arn("eks", f"addon/{eks}/{addon}/{_uuid(eks, addon)}"),
            }
        if typ == "aws:eks/accessEntry:AccessEntry":
            eks, principal = inputs.get("clusterName"), inputs.get("principalArn")
            return {
                "__id": f"{eks}:{principal}",
                "accessEntryArn": self._arn(
                    "eks", f"access-entry/{eks}/role/{acct}/{_uuid(principal)}"
                ),
            }
        if typ == "aws:eks/podIdentityAssociation:PodIdentityAssociation":
            eks = inputs.get("clusterName")
            assoc = f"a-{_hex(eks, inputs.get('namespace'), inputs.get('serviceAccount'))}"
            return {
                "__id": f"{eks},{assoc}",
                "associationId": assoc,
                "associationArn": self._arn("eks", f"podidentityassociation/{eks}/{assoc}"),
            }
        if typ == "aws:autoscaling/tag:Tag":
            tag = inputs.get("tag") or {}
            return {"__id": f"{inputs.get('autoscalingGroupName')},{tag.get('key')}"}
        if typ == "aws:ecr/repository:Repository":
            repo = str(inputs.get("name") or _autoname(name))
            return {
                "__id": repo,
                "name": repo,
                "arn": self._arn("ecr", f"repository/{repo}"),
                "registryId": acct,
                "repositoryUrl": f"{acct}.dkr.ecr.{region}.amazonaws.com/{repo}",
            }
        if typ == "aws:ecr/lifecyclePolicy:LifecyclePolicy":
            return {"__id": str(inputs.get("repository")), "registryId": acct}
        if typ == "aws:secretsmanager/secret:Secret":
            # name_prefix: AWS appends 26 characters (what Terraform's id.PrefixedUniqueId does).
            name_prefix = inputs.get("namePrefix")
            # The provider's suffix is time-based (Terraform's id.PrefixedUniqueId): a new one on
            # every create. Plans stay stable; a simulated account gets a fresh one each time.
            creation = self.account.next_creation() if self.account is not None else 0
            unique = _hex(name, name_prefix, "secret-name", creation, length=26)
            secret = str(
                inputs.get("name") or (f"{name_prefix}{unique}" if name_prefix else _autoname(name))
            )
            arn = self._arn("secretsmanager", f"secret:{secret}-{_alnum(secret, length=6)}")
            return {"__id": arn, "arn": arn, "name": secret}
        if typ == "aws:secretsmanager/secretVersion:SecretVersion":
            version = _uuid("version", name)
            return {
                "__id": f"{inputs.get('secretId')}|{version}",
                "arn": inputs.get("secretId"),
                "versionId": version,
            }
        if typ == "random:index/randomPassword:RandomPassword":
            length = int(inputs.get("length") or 32)
            value = _alnum("password", name, length=length)
            return {
                "__id": "none",
                "result": rpc.wrap_rpc_secret(value),
                "bcryptHash": rpc.wrap_rpc_secret(f"$2a$10${_alnum(value, length=53)}"),
            }
        if typ == "docker:index/image:Image":
            image_name = str(inputs.get("imageName") or name)
            repository = (
                image_name.rsplit(":", 1)[0] if ":" in image_name.rsplit("/", 1)[-1] else image_name
            )
            digest = hashlib.sha256(
                json.dumps(inputs, sort_keys=True, default=str).encode()
            ).hexdigest()
            return {
                "__id": f"{repository}@sha256:{digest}",
                "imageName": image_name,
                "repoDigest": f"{repository}@sha256:{digest}",
                "baseImageName": image_name,
                "registryServer": image_name.split("/", 1)[0],
                "context": (inputs.get("build") or {}).get("context", "."),
                "dockerfile": (inputs.get("build") or {}).get("dockerfile", "Dockerfile"),
                "platform": (inputs.get("build") or {}).get("platform", ""),
            }
        if typ.startswith("kubernetes:"):
            return self._kubernetes_outputs(typ, name, inputs)
        if typ.startswith(("aws:amp/", "aws:sqs/", "aws:cloudwatch/event")):
            return self._scaling_outputs(typ, name, inputs)
        if typ.startswith("aws:"):
            service = typ.split(":")[1].split("/")[0]
            rid = _autoname(name)
            return {
                "__id": rid,
                "arn": self._arn(service, f"{typ.rsplit(':', 1)[-1].lower()}/{rid}"),
            }
        return {}

    def _scaling_outputs(self, typ: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        """AMP, SQS and EventBridge: what the services answer, and what they refuse."""
        acct = self.account_id
        if typ == "aws:amp/workspace:Workspace":
            ws = f"ws-{_uuid('amp', name)}"
            return {
                "__id": ws,
                "arn": self._arn("aps", f"workspace/{ws}"),
                # AMP reports the endpoint with a trailing slash.
                "prometheusEndpoint": (
                    f"https://aps-workspaces.{self.region}.amazonaws.com/workspaces/{ws}/"
                ),
            }
        if typ == "aws:amp/workspaceConfiguration:WorkspaceConfiguration":
            days = int(inputs.get("retentionPeriodInDays") or 150)
            if not 1 <= days <= 1095:
                raise MockRejectedError(
                    f"ValidationException: retentionPeriodInDays {days} must be 1-1095"
                )
            return {"__id": str(inputs.get("workspaceId"))}
        if typ == "aws:amp/scraper:Scraper":
            _check_scraper(inputs)
            sid = f"s-{_uuid('scraper', name)}"
            suffix = _hex("slr", name, length=15)
            return {
                "__id": sid,
                "arn": self._arn("aps", f"scraper/{sid}"),
                "roleArn": f"arn:{self.partition}:iam::{acct}:role/aws-service-role/"
                "scraper.aps.amazonaws.com/"
                f"AWSServiceRoleForAmazonPrometheusScraper_{suffix}",
            }
        if typ == "aws:sqs/queue:Queue":
            queue = str(inputs.get("name") or _autoname(name))
            retention = int(inputs.get("messageRetentionSeconds") or 345600)
            if not 60 <= retention <= 1_209_600:
                raise MockRejectedError(f"InvalidAttributeValue: retention {retention}")
            url = f"https://sqs.{self.region}.amazonaws.com/{acct}/{queue}"
            return {"__id": url, "url": url, "name": queue, "arn": self._arn("sqs", queue)}
        if typ == "aws:sqs/queuePolicy:QueuePolicy":
            return {"__id": str(inputs.get("queueUrl"))}
        if typ == "aws:cloudwatch/eventRule:EventRule":
            rule = str(inputs.get("name") or _autoname(name))
            try:
                json.loads(str(inputs.get("eventPattern")))
            except json.JSONDecodeError as exc:
                raise MockRejectedError(f"InvalidEventPatternException: {exc}") from None
            return {"__id": rule, "name": rule, "arn": self._arn("events", f"rule/{rule}")}
        if typ == "aws:cloudwatch/eventTarget:EventTarget":
            return {"__id": f"{inputs.get('rule')}-{inputs.get('targetId')}"}
        return {"__id": _autoname(name)}

    def _kubernetes_outputs(self, typ: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        if typ == "kubernetes:helm.sh/v3:Release":
            release = str(inputs.get("name") or _autoname(name))
            return {
                "__id": f"{inputs.get('namespace', 'default')}/{release}",
                "name": release,
                "status": {
                    "name": release,
                    "namespace": inputs.get("namespace", "default"),
                    "status": "deployed",
                    "chart": inputs.get("chart"),
                    "version": inputs.get("version"),
                    "revision": 1,
                },
            }
        metadata = dict(inputs.get("metadata") or {})
        metadata.setdefault("name", _autoname(name))
        metadata.setdefault("uid", _uuid("k8s", typ, name))
        namespace = metadata.get("namespace")
        out: dict[str, Any] = {
            "__id": f"{namespace}/{metadata['name']}" if namespace else metadata["name"],
            "metadata": metadata,
        }
        if typ == "kubernetes:core/v1:Service":
            spec = dict(inputs.get("spec") or {})
            spec.setdefault(
                "clusterIP",
                f"172.20.{int(_hex(name, length=2), 16)}.{int(_hex(name, 'ip', length=2), 16)}",
            )
            out["spec"] = spec
            if spec.get("type") == "LoadBalancer":
                out["status"] = {
                    "loadBalancer": {
                        "ingress": [
                            {
                                "hostname": f"k8s-{metadata['name'][:20]}-{_hex(name, length=10)}"
                                f".elb.{self.region}.amazonaws.com"
                            }
                        ]
                    }
                }
        return out
