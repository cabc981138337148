"""One EKS managed node group: its launch template, the group, and scale-from-zero ASG tags."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import pulumi
import pulumi_aws as aws

from infra.components.types import component_options, type_token
from infra.config import CapacityType, NodeScaling
from infra.k8s.labels import GPU_RESOURCE

#: The ASG tag prefix cluster-autoscaler reads to build a node template for an empty group.
NODE_TEMPLATE_PREFIX: Final = "k8s.io/cluster-autoscaler/node-template"


def node_template_tags(
    labels: Mapping[str, str], taint: tuple[str, str, str], gpus: int
) -> dict[str, str]:
    """cluster-autoscaler node-template tags: labels, taint and GPU count of an empty group."""
    key, value, effect = taint
    tags = {f"{NODE_TEMPLATE_PREFIX}/label/{k}": v for k, v in labels.items()}
    tags[f"{NODE_TEMPLATE_PREFIX}/taint/{key}"] = f"{value}:{effect}"
    tags[f"{NODE_TEMPLATE_PREFIX}/resources/{GPU_RESOURCE}"] = str(gpus)
    return tags


def _first_asg_name(resources: Sequence[aws.eks.outputs.NodeGroupResource]) -> str:
    """Name of the Auto Scaling group behind a managed node group."""
    groups = resources[0].autoscaling_groups if resources else None
    if not groups or not groups[0].name:
        raise ValueError("the node group reports no Auto Scaling group")
    return groups[0].name


@dataclass(frozen=True)
class NodeGroupArgs:
    """Inputs of ``NodeGroup``: where the nodes join, what they are, how they scale."""

    cluster: aws.eks.Cluster
    cluster_name: str
    node_role_arn: pulumi.Input[str]
    subnet_ids: pulumi.Input[Sequence[str]]
    instance_types: Sequence[str]
    capacity_type: CapacityType
    ami_type: str
    scaling: NodeScaling
    labels: Mapping[str, str]
    root_volume_gib: int
    #: The key of the encrypted root volumes.
    key_arn: pulumi.Input[str]
    tags: Mapping[str, str]
    taints: Sequence[aws.eks.NodeGroupTaintArgs] = ()
    #: cluster-autoscaler node-template tags put on the group's ASG (scale from zero).
    asg_tags: Mapping[str, str] = field(default_factory=dict)
    #: What must exist before the nodes start, and be destroyed after them.
    depends_on: Sequence[pulumi.Resource] = ()
    #: Aliases of the children, for groups whose resources sat under another parent before.
    child_aliases: Sequence[pulumi.Alias] = ()


class NodeGroup(pulumi.ComponentResource):
    """A managed node group on a launch template with IMDSv2 only and an encrypted gp3 root.

    Used for the system nodes and for each GPU family. The group's ``name`` is also the
    ``aws.eks.NodeGroup``'s logical name; cluster-autoscaler owns the desired size once it
    exists.
    """

    group: aws.eks.NodeGroup

    def __init__(
        self, name: str, args: NodeGroupArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        component_type = type_token("cluster", "NodeGroup")
        super().__init__(component_type, name, None, component_options(component_type, opts))
        child = pulumi.ResourceOptions(parent=self, aliases=list(args.child_aliases))
        template = self._launch_template(name, args, child)
        self.group = aws.eks.NodeGroup(
            name,
            cluster_name=args.cluster.name,
            version=args.cluster.version,
            node_role_arn=args.node_role_arn,
            subnet_ids=args.subnet_ids,
            instance_types=list(args.instance_types),
            capacity_type=args.capacity_type.value,
            ami_type=args.ami_type,
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                min_size=args.scaling.min_size,
                desired_size=args.scaling.desired_size,
                max_size=args.scaling.max_size,
            ),
            update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
            launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
                id=template.id, version=template.latest_version.apply(str)
            ),
            labels=dict(args.labels),
            taints=list(args.taints),
            tags=dict(args.tags),
            opts=pulumi.ResourceOptions.merge(
                child,
                pulumi.ResourceOptions(
                    # Created after, and destroyed before, the add-ons nodes need from their start.
                    depends_on=list(args.depends_on),
                    # cluster-autoscaler owns the desired size once the group exists.
                    ignore_changes=["scalingConfig.desiredSize"],
                ),
            ),
        )
        self._asg_tags(name, args.asg_tags, child)
        self.register_outputs({"node_group_name": self.group.node_group_name})

    @staticmethod
    def _launch_template(
        name: str, args: NodeGroupArgs, opts: pulumi.ResourceOptions
    ) -> aws.ec2.LaunchTemplate:
        return aws.ec2.LaunchTemplate(
            f"{name}-lt",
            description=f"{args.cluster_name} {name} nodes",
            # IMDSv2 only, and one hop: pods (one hop further) cannot reach the node's role.
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled",
                http_tokens="required",
                http_put_response_hop_limit=1,
            ),
            block_device_mappings=[
                aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                    device_name="/dev/xvda",
                    ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                        volume_size=args.root_volume_gib,
                        volume_type="gp3",
                        encrypted="true",
                        kms_key_id=args.key_arn,
                        delete_on_termination="true",
                    ),
                )
            ],
            tag_specifications=[
                aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type=kind, tags=dict(args.tags))
                for kind in ("instance", "volume", "network-interface")
            ],
            update_default_version=True,
            tags=dict(args.tags),
            opts=opts,
        )

    def _asg_tags(self, name: str, tags: Mapping[str, str], opts: pulumi.ResourceOptions) -> None:
        """Tags on the group's ASG that managed node groups do not copy there themselves.

        Managed node groups do not copy labels and taints to their ASG, so an empty GPU group
        looks GPU-less to cluster-autoscaler until these tags tell it what a node would be
        (https://github.com/kubernetes/autoscaler/blob/master/cluster-autoscaler/cloudprovider/aws/README.md#scaling-a-node-group-to-0).
        """
        if not tags:
            return
        asg = self.group.resources.apply(_first_asg_name)
        for key, value in sorted(tags.items()):
            aws.autoscaling.Tag(
                f"{name}-asg-{key.removeprefix(NODE_TEMPLATE_PREFIX + '/')}",
                autoscaling_group_name=asg,
                tag=aws.autoscaling.TagTagArgs(key=key, value=value, propagate_at_launch=False),
                opts=opts,
            )
