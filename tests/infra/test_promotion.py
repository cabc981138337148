"""Build once, promote the digest: what the program declares for it, offline under mocks.

- long-lived stacks run exactly the configured ``imageRef`` and declare no docker build; a pr
  stack builds its own image and may not take one;
- the same ref gives the same digest on dev, staging and prod (``tools.delivery.promotion``);
- ECR replication (dev only, the registry CI pushes to) instead of rebuilding per region or
  account; destinations as in the ECR user guide's replication examples
  (https://docs.aws.amazon.com/AmazonECR/latest/userguide/registry-settings-examples.html).
"""

from __future__ import annotations

import json

import pytest

from infra.config import ConfigError
from tools.delivery.promotion import main as promotion_main
from tools.delivery.promotion import plan_images
from tools.mocks import ACCOUNT_ID
from tools.plan import config_file, read_stack_config, run_program

REF = f"{ACCOUNT_ID}.dkr.ecr.us-west-2.amazonaws.com/torch-eks-inference/dev@sha256:{'e' * 64}"
REPLICATION = "aws:ecr/replicationConfiguration:ReplicationConfiguration"


def test_one_ref_runs_with_the_same_digest_on_dev_staging_and_prod_without_a_build() -> None:
    found = plan_images(REF)
    assert list(found) == ["dev", "staging", "prod"]
    for row in found.values():
        assert row["images"] == [REF]
        assert row["builds"] == 0
        assert row["output"] == f"sha256:{'e' * 64}"


def test_the_promotion_command_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert promotion_main(["--image", REF]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")][2:]
    assert [row.split("|")[1].strip() for row in rows] == ["dev", "staging", "prod"]
    assert all(f"sha256:{'e' * 64}" in row and row.endswith("| 0 |") for row in rows)
    assert promotion_main(["--image", "repo:latest"]) == 2


def _config(stack: str, **extra: str) -> tuple[dict[str, str], list[str]]:
    values, secret_keys = read_stack_config(config_file(stack))
    values.update({f"torch-eks-inference:{k}": v for k, v in extra.items()})
    return values, secret_keys


def test_dev_replicates_its_registry_to_other_regions_and_accounts() -> None:
    values, secret_keys = _config(
        "dev", imageReplicas=json.dumps(["eu-west-1", "210987654321:us-east-1"])
    )
    run = run_program("dev", config=values, secret_keys=secret_keys)
    (replication,) = [r for r in run.registrations if r.type == REPLICATION]
    (rule,) = replication.inputs["replicationConfiguration"]["rules"]
    assert rule["destinations"] == [
        {"region": "eu-west-1", "registryId": ACCOUNT_ID},
        {"region": "us-east-1", "registryId": "210987654321"},
    ]
    assert rule["repositoryFilters"] == [
        {"filter": "torch-eks-inference/dev", "filterType": "PREFIX_MATCH"}
    ]
    # Without the key nothing is replicated.
    assert not [r for r in run_program("staging").registrations if r.type == REPLICATION]


@pytest.mark.parametrize(
    ("stack", "extra", "message"),
    [
        ("staging", {"imageReplicas": '["eu-west-1"]'}, "only the dev stack"),
        ("dev", {"imageReplicas": '["europe"]'}, "REGION or ACCOUNT_ID:REGION"),
        ("dev", {"imageReplicas": '["12:eu-west-1"]'}, "REGION or ACCOUNT_ID:REGION"),
        ("pr-7", {"imageRef": REF}, "pr stacks: they build their own image"),
        ("staging", {"imageRef": "none"}, "for dev's first up only"),
    ],
)
def test_bad_promotion_config_is_named(stack: str, extra: dict[str, str], message: str) -> None:
    values, secret_keys = _config(stack, **extra)
    with pytest.raises(ConfigError, match=message):
        run_program(stack, config=values, secret_keys=secret_keys)


def test_dev_bootstraps_the_platform_and_its_registry_without_the_service() -> None:
    values, secret_keys = _config("dev", imageRef="none")
    run = run_program("dev", config=values, secret_keys=secret_keys)
    types = {r.type for r in run.registrations}
    assert "aws:ecr/repository:Repository" in types
    assert "aws:eks/cluster:Cluster" in types
    assert not {t for t in types if t.startswith("kubernetes:apps/")}
    assert "docker:index/image:Image" not in types
    assert "ecrRepositoryUrl" in run.outputs
    assert "imageRef" not in run.outputs
