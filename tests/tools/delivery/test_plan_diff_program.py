"""The offline plan diff on a real change of this repository's stack config, end to end.

The base is this repository's committed HEAD (checked out into a temporary worktree by the
tool, as in CI); the head is a second temporary worktree of HEAD where stacks/Pulumi.dev.yaml
sets the replica maximum and the GPU instance types (dev's defaults, infra/environments.py, with
the maximum lowered and one type resized). The Markdown must show exactly those two
inputs on exactly those two resources, and nothing else.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tools.delivery.plan_diff import base_worktree, plan_diff

REPO = Path(__file__).resolve().parents[3]
DEV = Path("stacks") / "Pulumi.dev.yaml"
# A size change within one GPU family: one node group changes (another family would be another
# node group: one added, one removed). dev's defaults are hpaMaxReplicas 2 and g5/g6/g4dn xlarge.
EDITS = (
    "  torch-eks-inference:hpaMaxReplicas: 1\n"
    "  torch-eks-inference:gpuInstanceTypes:\n"
    "    - g5.2xlarge\n"
    "    - g6.xlarge\n"
    "    - g4dn.xlarge\n"
)


def test_hpa_max_and_gpu_instance_type_changes_show_exactly_those_inputs() -> None:
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout.strip()
    with base_worktree(REPO, head) as tree:
        config = tree / DEV
        text = config.read_text()
        assert "hpaMaxReplicas" not in text, text
        assert "gpuInstanceTypes" not in text, text
        config.write_text(text + EDITS)

        markdown = plan_diff(REPO, "dev", "HEAD", head_tree=tree)

    # A node group's instance types can only be set at creation (Terraform ForceNew): replace.
    assert "**1 to update** · 1 to replace · 0 to create · 0 to delete" in markdown
    replace, update = markdown.split("#### To replace (1)", 1)[1].split("#### To update (1)", 1)
    assert "`+-` replace **`cluster-gpu-g5`** `aws:eks/nodeGroup:NodeGroup`" in replace
    # KEDA's ScaledObject carries the replica bounds (KEDA creates the HPA in the cluster).
    assert (
        "`~` update **`service-scaled-object`** `kubernetes:keda.sh/v1alpha1:ScaledObject`"
        in update
    )
    rows = [line for line in markdown.splitlines() if line.startswith("| `")]
    assert sorted(rows) == [
        '| `instanceTypes[0]` **forces replacement** | `"g5.xlarge"` | `"g5.2xlarge"` |',
        "| `spec.maxReplicaCount` | `2` | `1` |",
    ]


def test_renaming_the_prod_cluster_replaces_a_protected_resource_and_says_so() -> None:
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout.strip()
    with base_worktree(REPO, head) as tree:
        config = tree / "stacks" / "Pulumi.prod.yaml"
        config.write_text(
            config.read_text() + "  torch-eks-inference:clusterName: torch-eks-prod-2\n"
        )
        markdown = plan_diff(REPO, "prod", "HEAD", head_tree=tree)

    line = next(row for row in markdown.splitlines() if "**`cluster-eks`**" in row)
    assert line.startswith("`+-` replace")
    assert "`protect`" in line
    assert "Pulumi refuses to replace a protected resource" in line
    assert "| `name` **forces replacement** |" in markdown
