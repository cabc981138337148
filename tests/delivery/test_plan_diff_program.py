"""The offline plan diff on a real change of this repository's stack config, end to end.

The base is this repository's committed HEAD (checked out into a temporary worktree by the
tool, as in CI); the head is a second temporary worktree of HEAD where stacks/Pulumi.dev.yaml
changes the HPA maximum and one GPU instance type. The Markdown must show exactly those two
inputs on exactly those two resources, and nothing else.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from infra.delivery.plan_diff import base_worktree, plan_diff

REPO = Path(__file__).resolve().parents[2]
DEV = Path("stacks") / "Pulumi.dev.yaml"
# A size change within one GPU family: one node group changes (another family would be another
# node group: one added, one removed).
EDITS = {"hpaMaxReplicas: 2\n": "hpaMaxReplicas: 1\n", "    - g5.xlarge\n": "    - g5.2xlarge\n"}


def test_hpa_max_and_gpu_instance_type_changes_show_exactly_those_inputs() -> None:
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout.strip()
    with base_worktree(REPO, head) as tree:
        config = tree / DEV
        text = config.read_text()
        for old, new in EDITS.items():
            assert text.count(old) == 1, f"{old!r} must appear once in {DEV}"
            text = text.replace(old, new)
        config.write_text(text)

        markdown = plan_diff(REPO, "dev", "HEAD", head_tree=tree)

    assert "**2 changed** · 0 added · 0 removed" in markdown
    changed = markdown.split("#### Changed (2)", 1)[1]
    resources = [line for line in changed.splitlines() if line.startswith("**`")]
    assert len(resources) == 2
    assert "`kubernetes:autoscaling/v2:HorizontalPodAutoscaler`" in changed
    assert "`aws:eks/nodeGroup:NodeGroup`" in changed
    rows = [line for line in changed.splitlines() if line.startswith("| `")]
    assert sorted(rows) == [
        '| `instanceTypes[0]` | `"g5.xlarge"` | `"g5.2xlarge"` |',
        "| `spec.maxReplicas` | `2` | `1` |",
    ]
