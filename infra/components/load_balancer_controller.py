"""The AWS Load Balancer Controller: what it is allowed to do and how it is installed.

It serves the internal NLB of ``serviceType: internal-nlb`` stacks (``infra.k8s.network_policies``
annotates the Service ``aws-load-balancer-type: external`` so the in-tree controller leaves it
alone) and finds the subnets to put it in by the ``kubernetes.io/role/internal-elb`` tag that
``infra.components.vpc`` puts on the private subnets.

Install steps and the policy version: https://docs.aws.amazon.com/eks/latest/userguide/lbc-helm.html
(controller v2.14.1, EKS Pod Identity, ``iam_policy.json`` from that release).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

#: Helm chart, pinned: (repository, chart, version). Chart 1.14.1 ships controller v2.14.1.
CHART: Final = ("https://aws.github.io/eks-charts", "aws-load-balancer-controller", "1.14.1")
CONTROLLER_VERSION: Final = "v2.14.1"
SERVICE_ACCOUNT: Final = "aws-load-balancer-controller"
#: The controller's IAM policy exactly as published for CONTROLLER_VERSION
#: (https://raw.githubusercontent.com/kubernetes-sigs/aws-load-balancer-controller/v2.14.1/docs/install/iam_policy.json).
#: Upstream also publishes iam_policy_cn.json and iam_policy_us-gov.json for the other
#: partitions; ``iam_policy`` rewrites this one's ARNs into the deployment's partition instead.
POLICY_FILE: Final = (
    Path(__file__).resolve().parents[1]
    / "policies"
    / f"aws-load-balancer-controller-{CONTROLLER_VERSION}.json"
)


def iam_policy(partition: str) -> str:
    """The controller's IAM policy with every ARN in ``partition``."""
    if partition not in ("aws", "aws-cn", "aws-us-gov"):
        raise ValueError(f"partition {partition!r} is not aws, aws-cn or aws-us-gov")
    text = POLICY_FILE.read_text(encoding="utf-8").replace("arn:aws:", f"arn:{partition}:")
    return json.dumps(json.loads(text), sort_keys=True)


def helm_values(
    *, cluster_name: str, region: str, vpc_id: str, node_selector: dict[str, str]
) -> dict[str, Any]:
    """Chart values: identity of the cluster and VPC given explicitly, two replicas on system nodes.

    ``region`` and ``vpcId`` are set because the controller would otherwise ask the instance
    metadata service, which the nodes' launch template puts out of a pod's reach (hop limit 1).
    The Service mutator webhook is off: our Service names its controller itself
    (``aws-load-balancer-type: external``), and a webhook that is down would block every
    Service of type LoadBalancer in the cluster.
    """
    return {
        "clusterName": cluster_name,
        "region": region,
        "vpcId": vpc_id,
        "replicaCount": 2,
        "serviceAccount": {"create": True, "name": SERVICE_ACCOUNT},
        "enableServiceMutatorWebhook": False,
        "nodeSelector": node_selector,
        "priorityClassName": "system-cluster-critical",
    }
