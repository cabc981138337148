"""The policies of the ``torch-eks-inference`` CrossGuard pack, grouped by what they guard.

Modules use relative imports only: the Pulumi policy host runs ``policy/__main__.py`` with
``policy/`` as its working directory (``guardrails`` is then a top-level package), while tests
import the same code as ``policy.guardrails``.
"""

from pulumi_policy import Policy

from .advisory import POLICIES as ADVISORY_POLICIES
from .aws import POLICIES as AWS_POLICIES
from .hardening import POLICIES as HARDENING_POLICIES
from .kubernetes import POLICIES as KUBERNETES_POLICIES
from .promotion import POLICIES as PROMOTION_POLICIES
from .registry import POLICIES as REGISTRY_POLICIES
from .scaling import POLICIES as SCALING_POLICIES
from .workloads import POLICIES as WORKLOAD_POLICIES

PACK_NAME = "torch-eks-inference"
#: Every policy of the pack; the mandatory ones fail ``pulumi preview`` and ``pulumi up``.
POLICIES: list[Policy] = [
    *KUBERNETES_POLICIES,
    *WORKLOAD_POLICIES,
    *PROMOTION_POLICIES,
    *AWS_POLICIES,
    *HARDENING_POLICIES,
    *REGISTRY_POLICIES,
    *ADVISORY_POLICIES,
    *SCALING_POLICIES,
]

__all__ = ["PACK_NAME", "POLICIES"]
