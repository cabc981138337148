"""Single components and helpers, for the cases no shipped stack file exercises."""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pulumi.runtime import MockCallArgs

from infra.components.cluster import build_kubeconfig, node_template_tags
from infra.components.image_registry import Registry, RegistryArgs, build_context, source_hash
from infra.components.types import LEGACY_TYPES, type_token
from infra.components.vpc import plan_subnets
from infra.config import ImageVariant
from tests.stack_inventory import Inventory
from tools.mocks import ProgramMocks
from tools.plan import config_file, read_stack_config, run_program


@pytest.mark.parametrize(
    ("cidr", "azs"), [("10.0.0.0/16", 2), ("10.20.0.0/16", 3), ("172.16.0.0/20", 3)]
)
def test_subnets_never_overlap_and_stay_inside_the_vpc(cidr: str, azs: int) -> None:
    private, public = plan_subnets(cidr, azs)
    assert len(private) == len(public) == azs
    networks = [ipaddress.IPv4Network(n) for n in private + public]
    vpc = ipaddress.IPv4Network(cidr)
    assert all(n.subnet_of(vpc) for n in networks)
    assert not any(a.overlaps(b) for i, a in enumerate(networks) for b in networks[i + 1 :])
    # Pods take VPC addresses: private subnets are four times the public ones.
    assert networks[0].num_addresses == 4 * networks[-1].num_addresses


def test_existing_vpc_is_used_as_is() -> None:
    values, _ = read_stack_config(config_file("dev"))
    values["torch-eks-inference:existingVpcId"] = "vpc-0123456789abcdef0"
    values["torch-eks-inference:existingPrivateSubnetIds"] = json.dumps(
        ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]
    )
    run = run_program("dev", config=values)
    types = {r.type for r in run.registrations}
    assert not {"aws:ec2/vpc:Vpc", "aws:ec2/subnet:Subnet", "aws:ec2/natGateway:NatGateway"} & types
    cluster = next(r for r in run.registrations if r.type == "aws:eks/cluster:Cluster")
    assert cluster.inputs["vpcConfig"]["subnetIds"] == [
        "subnet-0123456789abcdef0",
        "subnet-0123456789abcdef1",
    ]
    assert run.outputs["vpcId"] == "vpc-0123456789abcdef0"


@pytest.mark.parametrize(
    ("ephemeral", "protected", "force"),
    [(True, False, True), (False, False, True), (False, True, False)],
)
def test_only_a_protected_registry_keeps_its_images_on_destroy(
    ephemeral: bool, protected: bool, force: bool
) -> None:
    """ECR refuses to delete a non-empty repository unless forced (RepositoryNotEmptyException,
    https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_DeleteRepository.html)."""

    def program() -> None:
        Registry(
            "registry",
            RegistryArgs(
                repository_name="torch-eks-inference/x",
                ephemeral=ephemeral,
                deletion_protection=protected,
                tags={"stack": "x"},
            ),
        )

    run = run_program("x", config={"aws:region": "us-west-2"}, program=program)
    (repo,) = [r for r in run.registrations if r.type == "aws:ecr/repository:Repository"]
    assert repo.inputs["forceDelete"] is force
    assert repo.outputs["repositoryUrl"] == (
        "123456789012.dkr.ecr.us-west-2.amazonaws.com/torch-eks-inference/x"
    )


def test_source_hash_changes_with_the_sources_and_the_variant(tmp_path: Path) -> None:
    (tmp_path / "service").mkdir()
    (tmp_path / "service" / "app.py").write_text("print('a')\n")
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    first = source_hash(ImageVariant.CUDA, tmp_path)
    assert source_hash(ImageVariant.CUDA, tmp_path) == first
    assert source_hash(ImageVariant.CPU, tmp_path) != first
    (tmp_path / "service" / "__pycache__").mkdir()
    (tmp_path / "service" / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\0")
    assert source_hash(ImageVariant.CUDA, tmp_path) == first
    (tmp_path / "service" / "app.py").write_text("print('b')\n")
    assert source_hash(ImageVariant.CUDA, tmp_path) != first


def test_build_context_is_relative_to_where_the_program_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(root)
    assert build_context() == (".", "service/Dockerfile")
    monkeypatch.chdir(root / "infra")  # where the Pulumi CLI runs the program
    assert build_context() == ("..", "../service/Dockerfile")


def test_node_template_tags_for_a_four_gpu_group() -> None:
    tags = node_template_tags({"a": "b"}, ("nvidia.com/gpu", "true", "NoSchedule"), 4)
    assert tags == {
        "k8s.io/cluster-autoscaler/node-template/label/a": "b",
        "k8s.io/cluster-autoscaler/node-template/taint/nvidia.com/gpu": "true:NoSchedule",
        "k8s.io/cluster-autoscaler/node-template/resources/nvidia.com/gpu": "4",
    }


def test_kubeconfig_authenticates_through_the_aws_cli() -> None:
    config = json.loads(build_kubeconfig("c1", "https://x.eks.amazonaws.com", "Q0E=", "eu-west-1"))
    assert config["current-context"] == "c1"
    exec_ = config["users"][0]["user"]["exec"]
    assert exec_["args"] == [
        "eks",
        "get-token",
        "--cluster-name",
        "c1",
        "--region",
        "eu-west-1",
        "--output",
        "json",
    ]
    assert config["clusters"][0]["cluster"]["certificate-authority-data"] == "Q0E="


def test_mocks_refuse_functions_they_do_not_know() -> None:
    with pytest.raises(NotImplementedError, match="aws:rds/getInstance:getInstance"):
        ProgramMocks().call(MockCallArgs("aws:rds/getInstance:getInstance", {}, ""))


def test_program_starts_the_way_the_pulumi_cli_runs_it(tmp_path: Path) -> None:
    """From infra/ as the working directory, with infra/ first on sys.path (runpy.run_path).

    The script edits no path: the repository's packages import through the editable install.
    """
    root = Path(__file__).resolve().parents[2]
    script = tmp_path / "language_host.py"
    script.write_text(
        textwrap.dedent(
            """
            import json, runpy, sys
            # No path edits: tools, infra and service come from the editable install.
            from tools.plan import run_program
            sys.modules.pop("secrets", None)
            sys.path.insert(0, "")  # as `python -m`/`-c` would: infra/ itself importable
            run = run_program("dev", program=lambda: runpy.run_path(".", run_name="__main__"))
            import secrets
            # Only pr stacks build an image (long-lived ones take CI's by digest).
            pr = run_program(
                "pr-123",
                referenced={"organization/torch-eks-inference/dev": run},
                program=lambda: runpy.run_path(".", run_name="__main__"),
            )
            image = next(r for r in pr.registrations if r.type == "docker:index/image:Image")
            print(json.dumps({
                "secrets": secrets.__file__,
                "build": image.inputs["build"],
                "resources": len(run.registrations),
            }))
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=root / "infra",
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # The standard library's secrets module, not infra/components/api_key_secret.py.
    assert not result["secrets"].startswith(str(root))
    assert result["build"]["context"] == ".."
    assert result["build"]["dockerfile"] == "../service/Dockerfile"
    assert result["resources"] > 80


# --- one type-token scheme, with the old tokens aliased (issue 13 item 6) ---------------------
_TOKEN = re.compile(
    r"^torch-eks-inference:(network|cluster|registry|secrets|workload|observability|scaling):"
    r"[A-Z][A-Za-z]+$"
)


def test_every_component_type_follows_the_scheme(any_stack: Inventory) -> None:
    components = {r.type for r in any_stack.registrations if not r.custom}
    assert components
    assert sorted(t for t in components if not _TOKEN.match(t)) == []


def test_a_component_with_a_legacy_token_answers_to_its_old_urn(any_stack: Inventory) -> None:
    """Without the alias, `pulumi up` would delete and recreate it and everything under it."""
    aliases = any_stack.run.aliases
    checked = 0
    for reg in any_stack.registrations:
        legacy = LEGACY_TYPES.get(reg.type)
        if legacy is None:
            continue
        old = f"urn:pulumi:{any_stack.run.stack}::torch-eks-inference::{legacy}::{reg.name}"
        assert old in aliases[reg.urn], f"{reg.type} {reg.name} lacks an alias to {legacy}"
        checked += 1
    assert checked


def test_every_node_group_is_a_node_group_component_with_its_launch_template(
    long_lived: Inventory,
) -> None:
    """System and GPU nodes come from the one NodeGroup component; the moved children keep
    their old URNs (directly under the Cluster's legacy token) through an alias."""
    by_urn = {r.urn: r for r in long_lived.registrations}
    groups = long_lived.of_type("aws:eks/nodeGroup:NodeGroup")
    assert {g.name for g in groups} >= {"cluster-system"}
    for group in groups:
        parent = by_urn[group.parent_urn or ""]
        assert (parent.type, parent.name) == (type_token("cluster", "NodeGroup"), group.name)
        (template,) = [
            r
            for r in long_lived.of_type("aws:ec2/launchTemplate:LaunchTemplate")
            if r.parent_urn == parent.urn
        ]
        assert template.name == f"{group.name}-lt"
        old = (
            f"urn:pulumi:{long_lived.run.stack}::torch-eks-inference::torch-eks:infra:Cluster"
            f"$aws:eks/nodeGroup:NodeGroup::{group.name}"
        )
        assert old in long_lived.run.aliases[group.urn]
