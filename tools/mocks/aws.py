"""AWS resources: the computed outputs each type gets, and what the services refuse.

``RESOURCES`` maps a ``pulumi_aws`` type token to ``function(inputs, ctx) -> outputs``; a type not
in it gets ``generic``: an auto-name and an ARN of the type's service. ARNs carry the partition of
the region (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference-arns.html), ids have the
prefix and length EC2 gives them, and the services' endpoints and URLs have their real shape.
The provider functions (invokes) are in ``tools.mocks.aws_functions``.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import Any, Final

import yaml

from tools.mocks.context import (
    ID,
    Context,
    MockRejectedError,
    OutputFn,
    alnum,
    autoname,
    hex_id,
    uuid_of,
)

#: A syntactically valid certificate: what EKS returns base64-encoded as certificateAuthority.data.
_FAKE_CA_PEM: Final = (
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBszCCAVmgAwIBAgIUMockMockMockMockMockMockMockMockwCgYIKoZIzj0EAwIw\n"
    "-----END CERTIFICATE-----\n"
)

#: EC2 resources: (id prefix, ARN resource kind or None when the resource has no ARN).
_EC2: Final[Mapping[str, tuple[str, str | None]]] = {
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
#: Services whose unknown types get only an id (no ARN the program could rely on).
_ID_ONLY_PREFIXES: Final = ("aws:amp/", "aws:sqs/", "aws:cloudwatch/event")


def _ec2(prefix: str, kind: str | None) -> OutputFn:
    def outputs(inputs: dict[str, Any], ctx: Context) -> dict[str, Any]:
        rid = f"{prefix}-{hex_id(ctx.typ, ctx.name)}"
        out: dict[str, Any] = {ID: rid}
        if kind is not None:
            out["arn"] = ctx.arn("ec2", f"{kind}/{rid}")
        if ctx.typ == "aws:ec2/launchTemplate:LaunchTemplate":
            out.update({"latestVersion": 1, "defaultVersion": 1})
        return out

    return outputs


def _vpc(inputs: dict[str, Any], ctx: Context) -> dict[str, Any]:
    vid = f"vpc-{hex_id(ctx.name)}"
    return {
        ID: vid,
        "arn": ctx.arn("ec2", f"vpc/{vid}"),
        "defaultSecurityGroupId": f"sg-{hex_id(ctx.name, 'default')}",
        "mainRouteTableId": f"rtb-{hex_id(ctx.name, 'main')}",
        "ownerId": ctx.account_id,
    }


def _eip(inputs: dict[str, Any], ctx: Context) -> dict[str, Any]:
    octets = [int(hex_id(ctx.name, i, length=2), 16) for i in range(2)]
    return {
        ID: f"eipalloc-{hex_id(ctx.name)}",
        "allocationId": f"eipalloc-{hex_id(ctx.name)}",
        "publicIp": f"52.10.{octets[0]}.{octets[1]}",
    }


def _kms_key(inputs: dict[str, Any], ctx: Context) -> dict[str, Any]:
    key_id = uuid_of("kms", ctx.name)
    return {ID: key_id, "keyId": key_id, "arn": ctx.arn("kms", f"key/{key_id}")}


def _kms_alias(inputs: dict[str, Any], ctx: Context) -> dict[str, Any]:
    alias = str(inputs.get("name") or f"alias/{ctx.name}")
    return {ID: alias, "arn": ctx.arn("kms", alias)}


def _role(inputs: dict[str, Any], ctx: Context) -> dict[str, Any]:
    role = ctx.autoname(inputs)
    return {
        ID: role,
        "name": role,
        "arn": ctx.global_arn("iam", f"role/{role}"),
        "uniqueId": f"AROA{hex_id(role).upper()}",
    }


def _role_policy(inputs: dict[str, Any], ctx: Context) -> dict[str, Any]:
    name = autoname(ctx.name)
    return {ID: f"{inputs.get('role')}:{name}", "name": name}


def _role_policy_attachment(inputs: dict[str, Any], ctx: Context) -> dict[str, Any]:
    return {ID: f"{inputs.get('role')}-{hex_id(ctx.name, length=8)}"}


def _log_group(inputs: dict[str, Any], ctx: Context) -> dict[str, Any]:
    group = ctx.autoname(inputs)
    return {ID: group, "name": group, "arn": ctx.arn("logs", f"log-group:{group}")}


def _metric_alarm(inputs: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """An alarm is known by its name; its ARN ends in ``:alarm:<name>``.

    https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_TagResource.html
    """
    name = ctx.autoname(inputs)
    return {ID: name, "name": name, "arn": ctx.arn("cloudwatch", f"alarm:{name}")}


def _dashboard(inputs: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Dashboards are global (no region in the ARN); the provider calls it ``dashboardArn``.

    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-cloudwatch-dashboard.html
    """
    name = ctx.autoname(inputs, "dashboardName")
    return {ID: name, "dashboardArn": ctx.global_arn("cloudwatch", f"dashboard/{name}")}


def _log_metric_filter(inputs: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """A metric filter has a name and no ARN."""
    name = ctx.autoname(inputs)
    return {ID: name, "name": name}


def _access_policy_association(inputs: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """No ARN: the id joins cluster, principal and policy with ``#``.

    hashicorp/terraform-provider-aws internal/service/eks/access_policy_association.go
    (accessPolicyAssociationCreateResourceID).
    """
    parts = (inputs.get("clusterName"), inputs.get("principalArn"), inputs.get("policyArn"))
    return {ID: "#".join(str(p) for p in parts)}


def _eks_cluster(inputs: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """EKS's endpoint, CA and OIDC issuer, in the shapes DescribeCluster returns them."""
    cluster = ctx.autoname(inputs)
    endpoint_id = hex_id("eks", cluster, length=32).upper()
    oidc = {"issuer": f"https://oidc.{ctx.endpoint('eks')}/id/{endpoint_id}"}
    return {
        ID: cluster,
        "name": cluster,
        "arn": ctx.arn("eks", f"cluster/{cluster}"),
        "endpoint": f"https://{endpoint_id}.gr7.{ctx.region}.eks.{ctx.dns_suffix}",
        "certificateAuthority": {"data": base64.b64encode(_FAKE_CA_PEM.encode()).decode()},
        "identities": [{"oidcs": [oidc]}],
        "platformVersion": "eks.1",
        "status": "ACTIVE",
        "clusterId": uuid_of("cluster", cluster),
        "vpcConfig": {
            **(inputs.get("vpcConfig") or {}),
            "clusterSecurityGroupId": f"sg-{hex_id('cluster-sg', cluster)}",
            "vpcId": f"vpc-{hex_id('cluster-vpc', cluster)}",
        },
        "version": inputs.get("version") or "1.33",
    }


def _node_group(inputs: dict[str, Any], ctx: Context) -> dict[str, Any]:
    group = ctx.autoname(inputs, "nodeGroupName")
    cluster = inputs.get("clusterName", "cluster")
    uid = uuid_of("ng", cluster, group)
    asg = {"autoscalingGroups": [{"name": f"eks-{group}-{uid}"}], "remoteAccessSecurityGroupId": ""}
    return {
        ID: f"{cluster}:{group}",
        "nodeGroupName": group,
        "arn": ctx.arn("eks", f"nodegroup/{cluster}/{group}/{uid}"),
        "resources": [asg],
        "status": "ACTIVE",
    }


def _addon(inputs: dict[str, Any], ctx: Context) -> dict[str, Any]:
    addon, eks = inputs.get("addonName"), inputs.get("clusterName")
    return {
        ID: f"{eks}:{addon}",
        "arn": ctx.arn("eks", f"addon/{eks}/{addon}/{uuid_of(eks, addon)}"),
    }


def _access_entry(inputs: dict[str, Any], ctx: Context) -> dict[str, Any]:
    eks, principal = inputs.get("clusterName"), inputs.get("principalArn")
    arn = ctx.arn("eks", f"access-entry/{eks}/role/{ctx.account_id}/{uuid_of(principal)}")
    return {ID: f"{eks}:{principal}", "accessEntryArn": arn}


def _pod_identity(inputs: dict[str, Any], ctx: Context) -> dict[str, Any]:
    eks = inputs.get("clusterName")
    assoc = f"a-{hex_id(eks, inputs.get('namespace'), inputs.get('serviceAccount'))}"
    return {
        ID: f"{eks},{assoc}",
        "associationId": assoc,
        "associationArn": ctx.arn("eks", f"podidentityassociation/{eks}/{assoc}"),
    }


def _asg_tag(inputs: dict[str, Any], ctx: Context) -> dict[str, Any]:
    tag = inputs.get("tag") or {}
    return {ID: f"{inputs.get('autoscalingGroupName')},{tag.get('key')}"}


def _ecr_repository(inputs: dict[str, Any], ctx: Context) -> dict[str, Any]:
    repo = ctx.autoname(inputs)
    return {
        ID: repo,
        "name": repo,
        "arn": ctx.arn("ecr", f"repository/{repo}"),
        "registryId": ctx.account_id,
        "repositoryUrl": f"{ctx.account_id}.{ctx.endpoint('dkr.ecr')}/{repo}",
    }


def _ecr_lifecycle(inputs: dict[str, Any], ctx: Context) -> dict[str, Any]:
    return {ID: str(inputs.get("repository")), "registryId": ctx.account_id}


def _secret(inputs: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """A secret's name and ARN: AWS appends ``-`` and six characters to the name in the ARN.

    With ``namePrefix`` the provider appends 26 characters (Terraform's id.PrefixedUniqueId),
    time-based: a new one on every create. Plans stay stable; a simulated account gets a fresh
    one each time.
    """
    name_prefix = inputs.get("namePrefix")
    creation = ctx.account.next_creation() if ctx.account is not None else 0
    unique = hex_id(ctx.name, name_prefix, "secret-name", creation, length=26)
    secret = str(
        inputs.get("name") or (f"{name_prefix}{unique}" if name_prefix else autoname(ctx.name))
    )
    arn = ctx.arn("secretsmanager", f"secret:{secret}-{alnum(secret, length=6)}")
    return {ID: arn, "arn": arn, "name": secret}


def _secret_version(inputs: dict[str, Any], ctx: Context) -> dict[str, Any]:
    version = uuid_of("version", ctx.name)
    return {
        ID: f"{inputs.get('secretId')}|{version}",
        "arn": inputs.get("secretId"),
        "versionId": version,
    }


def _amp_workspace(inputs: dict[str, Any], ctx: Context) -> dict[str, Any]:
    ws = f"ws-{uuid_of('amp', ctx.name)}"
    return {
        ID: ws,
        "arn": ctx.arn("aps", f"workspace/{ws}"),
        # AMP reports the endpoint with a trailing slash.
        "prometheusEndpoint": f"https://{ctx.endpoint('aps-workspaces')}/workspaces/{ws}/",
    }


def _amp_workspace_configuration(inputs: dict[str, Any], ctx: Context) -> dict[str, Any]:
    days = int(inputs.get("retentionPeriodInDays") or 150)
    if not 1 <= days <= 1095:
        raise MockRejectedError(f"ValidationException: retentionPeriodInDays {days} must be 1-1095")
    return {ID: str(inputs.get("workspaceId"))}


def check_scraper(inputs: Mapping[str, Any]) -> None:
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


def _amp_scraper(inputs: dict[str, Any], ctx: Context) -> dict[str, Any]:
    check_scraper(inputs)
    sid = f"s-{uuid_of('scraper', ctx.name)}"
    suffix = hex_id("slr", ctx.name, length=15)
    role = "role/aws-service-role/scraper.aps.amazonaws.com/"
    role += f"AWSServiceRoleForAmazonPrometheusScraper_{suffix}"
    return {
        ID: sid,
        "arn": ctx.arn("aps", f"scraper/{sid}"),
        "roleArn": ctx.global_arn("iam", role),
    }


def _sqs_queue(inputs: dict[str, Any], ctx: Context) -> dict[str, Any]:
    queue = ctx.autoname(inputs)
    retention = int(inputs.get("messageRetentionSeconds") or 345600)
    if not 60 <= retention <= 1_209_600:
        raise MockRejectedError(f"InvalidAttributeValue: retention {retention}")
    url = f"https://{ctx.endpoint('sqs')}/{ctx.account_id}/{queue}"
    return {ID: url, "url": url, "name": queue, "arn": ctx.arn("sqs", queue)}


def _sqs_queue_policy(inputs: dict[str, Any], ctx: Context) -> dict[str, Any]:
    return {ID: str(inputs.get("queueUrl"))}


def _event_rule(inputs: dict[str, Any], ctx: Context) -> dict[str, Any]:
    rule = ctx.autoname(inputs)
    try:
        json.loads(str(inputs.get("eventPattern")))
    except json.JSONDecodeError as exc:
        raise MockRejectedError(f"InvalidEventPatternException: {exc}") from None
    return {ID: rule, "name": rule, "arn": ctx.arn("events", f"rule/{rule}")}


def _event_target(inputs: dict[str, Any], ctx: Context) -> dict[str, Any]:
    return {ID: f"{inputs.get('rule')}-{inputs.get('targetId')}"}


def generic(inputs: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Any other AWS type: an auto-name, and an ARN of its service (none for AMP/SQS/events)."""
    rid = autoname(ctx.name)
    if ctx.typ.startswith(_ID_ONLY_PREFIXES):
        return {ID: rid}
    service = ctx.typ.split(":")[1].split("/")[0]
    return {ID: rid, "arn": ctx.arn(service, f"{ctx.typ.rsplit(':', 1)[-1].lower()}/{rid}")}


RESOURCES: Final[Mapping[str, OutputFn]] = {
    "aws:ec2/vpc:Vpc": _vpc,
    **{typ: _ec2(prefix, kind) for typ, (prefix, kind) in _EC2.items()},
    "aws:ec2/eip:Eip": _eip,
    "aws:kms/key:Key": _kms_key,
    "aws:kms/alias:Alias": _kms_alias,
    "aws:iam/role:Role": _role,
    "aws:iam/rolePolicy:RolePolicy": _role_policy,
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": _role_policy_attachment,
    "aws:cloudwatch/logGroup:LogGroup": _log_group,
    "aws:cloudwatch/metricAlarm:MetricAlarm": _metric_alarm,
    "aws:cloudwatch/dashboard:Dashboard": _dashboard,
    "aws:cloudwatch/logMetricFilter:LogMetricFilter": _log_metric_filter,
    "aws:eks/accessPolicyAssociation:AccessPolicyAssociation": _access_policy_association,
    "aws:eks/cluster:Cluster": _eks_cluster,
    "aws:eks/nodeGroup:NodeGroup": _node_group,
    "aws:eks/addon:Addon": _addon,
    "aws:eks/accessEntry:AccessEntry": _access_entry,
    "aws:eks/podIdentityAssociation:PodIdentityAssociation": _pod_identity,
    "aws:autoscaling/tag:Tag": _asg_tag,
    "aws:ecr/repository:Repository": _ecr_repository,
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": _ecr_lifecycle,
    "aws:secretsmanager/secret:Secret": _secret,
    "aws:secretsmanager/secretVersion:SecretVersion": _secret_version,
    "aws:amp/workspace:Workspace": _amp_workspace,
    "aws:amp/workspaceConfiguration:WorkspaceConfiguration": _amp_workspace_configuration,
    "aws:amp/scraper:Scraper": _amp_scraper,
    "aws:sqs/queue:Queue": _sqs_queue,
    "aws:sqs/queuePolicy:QueuePolicy": _sqs_queue_policy,
    "aws:cloudwatch/eventRule:EventRule": _event_rule,
    "aws:cloudwatch/eventTarget:EventTarget": _event_target,
}
