"""Stack configuration: per-environment defaults, and one clear error for every bad key or value."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from infra.config import (
    CLUSTER_ONLY_KEYS,
    COMMON_DEFAULTS,
    ENVIRONMENT_DEFAULTS,
    KNOWN_KEYS,
    CapacityType,
    ConfigError,
    Environment,
    ImageVariant,
    NatPolicy,
    ServiceType,
    StackConfig,
    load_stack_config,
)
from infra.environments import PER_ENVIRONMENT_KEYS, defaults_for, table
from tools.plan import read_stack_config

REPO_ROOT = Path(__file__).resolve().parents[2]
P = "torch-eks-inference"
API_KEY = f"{P}:apiKey"
GOOD_KEY = "k" * 32


#: The least a long-lived stack must say: who deploys it (access is never implicit).
DEPLOYER = "arn:aws:iam::123456789012:role/PulumiDeployer"


def raw(**values: Any) -> dict[str, str]:
    """Config as the engine passes it: namespaced keys, strings, lists JSON-encoded.

    Long-lived stacks get a deploy role unless the test sets ``deployRoleArns`` itself.
    """
    config = {"aws:region": "us-west-2"}
    if values.get("environment", "") != "pr" and "clusterStack" not in values:
        values.setdefault("deployRoleArns", [DEPLOYER])
    for key, value in values.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, list | dict):
            text = json.dumps(value)
        else:
            text = str(value)
        config[f"{P}:{key}"] = text
    return config


#: The day the calendar rules below are asserted for.
TODAY = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def load(stack: str = "dev", secret_keys: frozenset[str] = frozenset(), **values: Any) -> Any:
    return load_stack_config(stack, raw(**values), secret_keys=secret_keys, now=TODAY)


def problems(stack: str = "dev", **values: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(stack, **values)
    return caught.value.problems


def one_problem(stack: str = "dev", **values: Any) -> str:
    found = problems(stack, **values)
    assert len(found) == 1, found
    return found[0]


# ------------------------------------------------------------------ defaults


def test_dev_defaults() -> None:
    cfg = load("dev")
    assert cfg.environment is Environment.DEV
    assert cfg.gpu_capacity_type is CapacityType.SPOT
    assert cfg.gpu_nodes.min_size == 0
    assert cfg.nat_policy is NatPolicy.SINGLE
    assert cfg.az_count == 2
    assert cfg.log_retention_days == 7
    assert cfg.deletion_protection is False
    assert cfg.service_type is ServiceType.CLUSTER_IP
    assert cfg.cluster_name == "torch-eks-inference-dev"
    assert cfg.namespace == "inference"
    # Secure default: no public API endpoint unless a stack lists who may reach it.
    assert cfg.public_access_cidrs == ()
    assert cfg.expires_at is None
    assert cfg.api_key is None


def test_prod_defaults() -> None:
    cfg = load("prod")
    assert cfg.gpu_capacity_type is CapacityType.ON_DEMAND
    assert cfg.nat_policy is NatPolicy.PER_AZ
    assert cfg.az_count == 3
    assert cfg.deletion_protection is True
    assert cfg.log_retention_days == 365
    assert (cfg.hpa_min_replicas, cfg.hpa_max_replicas) == (2, 6)


def test_pr_stack_derives_namespace_and_expiry() -> None:
    now = datetime(2026, 11, 25, 20, 13, 42, tzinfo=UTC)
    cfg = load_stack_config(
        "pr-42", raw(clusterStack="acme/torch-eks-inference/dev", expiryHours=48), now=now
    )
    assert cfg.is_ephemeral
    assert cfg.namespace == "inference-pr-42"
    assert cfg.expires_at_iso == "2026-11-27T20:13:00Z"
    assert cfg.resource_tags["expires-at"] == "2026-11-27T20:13:00Z"
    assert cfg.cluster_stack == "acme/torch-eks-inference/dev"


def test_explicit_expiry_wins() -> None:
    cfg = load("pr-7", clusterStack="dev", expiresAt="2026-12-01T08:00:00Z")
    assert cfg.expires_at_iso == "2026-12-01T08:00:00Z"


@pytest.mark.parametrize(("value", "expected"), [("-1", 2), ("", 2), ("3", 3)])
def test_sentinels_mean_the_environment_default(value: str, expected: int) -> None:
    config = raw()
    config[f"{P}:availabilityZoneCount"] = value
    assert load_stack_config("dev", config).az_count == expected


def test_environment_key_overrides_the_stack_name() -> None:
    cfg = load("eu-prod", environment="prod")
    assert cfg.environment is Environment.PROD
    assert cfg.deletion_protection is True


def test_tags_and_api_key() -> None:
    cfg = load(
        "dev", secret_keys=frozenset({API_KEY}), tags=["team=ml", "cost-center=42"], apiKey=GOOD_KEY
    )
    assert cfg.tags == {"team": "ml", "cost-center": "42"}
    assert cfg.resource_tags["team"] == "ml"
    assert cfg.api_key is not None
    assert cfg.api_key.reveal() == GOOD_KEY
    # The secret never shows in the config's repr (logs, tracebacks).
    assert GOOD_KEY not in repr(cfg)


def test_gpus_per_node_follows_the_smallest_instance() -> None:
    assert load("dev", gpuInstanceTypes=["g5.12xlarge", "g5.48xlarge"]).gpus_per_node == 4
    assert load("dev", gpuInstanceTypes=["p4d.24xlarge"], hpaMaxReplicas=2).gpus_per_node == 8


# ------------------------------------------------------------------ every key's errors


@pytest.mark.parametrize(
    ("stack", "values", "key", "fragment"),
    [
        ("dev", {"environment": "qa"}, "environment", "must be one of dev, staging, prod, pr"),
        # EKS release calendar on 2026-12-01 (TODAY below): 1.31 left extended support on
        # 2026-11-26, 1.32/1.33 are in extended support, 1.34/1.35 in standard support.
        # https://docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions.html
        ("dev", {"kubernetesVersion": "1.29"}, "kubernetesVersion", "EKS has no Kubernetes 1.29"),
        (
            "dev",
            {"kubernetesVersion": "1.31"},
            "kubernetesVersion",
            "extended support for Kubernetes 1.31 ended on 2026-11-26",
        ),
        # "You cannot disable extended support once your cluster has entered it":
        # https://docs.aws.amazon.com/eks/latest/userguide/disable-extended-support.html
        (
            "dev",
            {"kubernetesVersion": "1.33", "upgradeSupportType": "STANDARD"},
            "kubernetesVersion",
            "does not allow upgradeSupportType STANDARD",
        ),
        ("dev", {"upgradeSupportType": "NONE"}, "upgradeSupportType", "STANDARD, EXTENDED"),
        ("dev", {"kubernetesVersion": "1.36"}, "kubernetesVersion", "EKS has no Kubernetes 1.36"),
        ("dev", {"clusterName": "-bad name"}, "clusterName", "letters, digits"),
        ("dev", {"vpcCidr": "10.0.0.0/33"}, "vpcCidr", "IPv4 network"),
        ("dev", {"vpcCidr": "10.0.0.1/16"}, "vpcCidr", "IPv4 network"),
        ("dev", {"vpcCidr": "10.0.0.0/24"}, "vpcCidr", "/16 to /20"),
        ("dev", {"vpcCidr": "8.8.0.0/16"}, "vpcCidr", "private (RFC 1918)"),
        (
            "dev",
            {
                "existingVpcId": "vpc-xyz",
                "existingPrivateSubnetIds": [
                    "subnet-0123456789abcdef0",
                    "subnet-0123456789abcdef1",
                ],
            },
            "existingVpcId",
            "vpc-0123456789abcdef0",
        ),
        (
            "dev",
            {
                "existingVpcId": "vpc-0123456789abcdef0",
                "existingPrivateSubnetIds": ["subnet-0123456789abcdef0"],
            },
            "existingPrivateSubnetIds",
            "at least 2 private subnets",
        ),
        (
            "dev",
            {
                "existingVpcId": "vpc-0123456789abcdef0",
                "existingPrivateSubnetIds": ["subnet-1", "subnet-0123456789abcdef0"],
            },
            "existingPrivateSubnetIds",
            "subnet-0123456789abcdef0",
        ),
        (
            "dev",
            {"existingPublicSubnetIds": ["subnet-0123456789abcdef0"]},
            "existingVpcId",
            "set it when existing subnet ids",
        ),
        ("dev", {"availabilityZoneCount": 4}, "availabilityZoneCount", "from 2 to 3"),
        ("dev", {"availabilityZoneCount": "two"}, "availabilityZoneCount", "integer"),
        ("dev", {"natGateways": "none"}, "natGateways", "single, per-az"),
        (
            "dev",
            {"endpointPublicAccessCidrs": ["10.0.0.300/32"]},
            "endpointPublicAccessCidrs",
            "CIDR",
        ),
        (
            "dev",
            {"endpointPublicAccessCidrs": "203.0.113.7/32"},
            "endpointPublicAccessCidrs",
            "list of strings",
        ),
        (
            "prod",
            {"endpointPublicAccessCidrs": ["0.0.0.0/0"]},
            "endpointPublicAccessCidrs",
            "whole internet",
        ),
        (
            "staging",
            {"endpointPublicAccessCidrs": ["::/0"]},
            "endpointPublicAccessCidrs",
            "whole internet",
        ),
        (
            "dev",
            {"adminRoleArns": ["arn:aws:iam::123:role/x"]},
            "adminRoleArns",
            "must be an IAM role ARN",
        ),
        ("dev", {"gpuInstanceTypes": ["m5.large"]}, "gpuInstanceTypes", "families: g4dn"),
        ("dev", {"gpuInstanceTypes": ["g5g.xlarge"]}, "gpuInstanceTypes", "x86_64 NVIDIA"),
        ("dev", {"gpuInstanceTypes": ["g5.huge"]}, "gpuInstanceTypes", "no such g5 size"),
        (
            "dev",
            {"gpuInstanceTypes": ["g5.xlarge"], "gpuNodeMax": 0},
            "gpuNodeMax",
            "from 1 to 100",
        ),
        ("dev", {"gpuCapacityType": "spot"}, "gpuCapacityType", "SPOT, ON_DEMAND"),
        (
            "dev",
            {"gpuNodeMin": 6, "gpuNodeMax": 5},
            "gpuNodeMin",
            "must not exceed gpuNodeMax (5)",
        ),
        (
            "dev",
            {"gpuNodeDesired": 3},
            "gpuNodeDesired",
            "GPU node groups start at gpuNodeMin",
        ),
        ("dev", {"gpuNodeMin": -2}, "gpuNodeMin", "from 0 to 100"),
        ("dev", {"gpuRootVolumeGiB": 20}, "gpuRootVolumeGiB", "from 50 to 2000"),
        ("dev", {"systemInstanceType": "g5.xlarge"}, "systemInstanceType", "non-GPU"),
        ("dev", {"systemNodeMin": 0, "systemNodeDesired": 1}, "systemNodeMin", "from 1 to 100"),
        ("dev", {"logRetentionDays": 10}, "logRetentionDays", "CloudWatch allows 1, 3, 5, 7, 14"),
        (
            "dev",
            {"hpaMinReplicas": 3, "hpaMaxReplicas": 2},
            "hpaMinReplicas",
            "must not exceed hpaMaxReplicas (2)",
        ),
        # Each CUDA pod holds a GPU; a rolling update runs maxSurge (1) extra pods, and dev keeps
        # prGpuSlots (2) free for pr stacks: 5 + 1 + 2 = 8 > 5 nodes x 1 GPU.
        (
            "dev",
            {"hpaMaxReplicas": 5},
            "gpuNodeMax",
            "needs 6 (hpaMaxReplicas 5 + 1 rollout surge) and prGpuSlots keeps 2",
        ),
        # A p5.4xlarge has one H100, not eight (the size decides, per instance type).
        (
            "dev",
            {"gpuInstanceTypes": ["p5.4xlarge"], "gpuNodeMax": 2},
            "gpuNodeMax",
            "2 GPU(s) at most",
        ),
        ("dev", {"hpaTargetCpuUtilization": 100}, "hpaTargetCpuUtilization", "from 10 to 95"),
        ("dev", {"imageVariant": "rocm"}, "imageVariant", "cpu, cuda"),
        ("dev", {"imageTag": "bad tag!"}, "imageTag", "Docker tag"),
        ("dev", {"serviceType": "LoadBalancer"}, "serviceType", "internal-nlb, cluster-ip"),
        ("dev", {"deletionProtection": "yes"}, "deletionProtection", "true or false"),
        (
            "prod",
            {"deletionProtection": False},
            "deletionProtection",
            "prod stacks must keep deletion protection",
        ),
        ("dev", {"secretRecoveryDays": 3}, "secretRecoveryDays", "0 or 7-30"),
        ("dev", {"secretRecoveryDays": 31}, "secretRecoveryDays", "from 0 to 30"),
        ("pr-1", {"clusterStack": "dev", "expiryHours": 0}, "expiryHours", "from 1 to 720"),
        ("pr-1", {"clusterStack": "dev", "expiresAt": "tomorrow"}, "expiresAt", "ISO-8601 UTC"),
        ("dev", {"expiresAt": "2026-12-01T08:00:00Z"}, "expiresAt", "only pr stacks expire"),
        ("pr-1", {}, "clusterStack", "pulumi config set clusterStack"),
        ("pr-1", {"clusterStack": "a/b/c/d"}, "clusterStack", "<org>/<project>/<stack>"),
        ("dev", {"clusterStack": "dev"}, "clusterStack", "only pr stacks"),
        (
            "pr-1",
            {"clusterStack": "dev", "gpuNodeMax": 5},
            "gpuNodeMax",
            "not allowed on pr stacks",
        ),
        ("dev", {"tags": ["team"]}, "tags", "KEY=VALUE"),
        ("dev", {"tags": ["aws:owner=me"]}, "tags", "aws: prefix is reserved"),
        ("dev", {"gpuInstanceType": "g5.xlarge"}, "gpuInstanceType", "unknown key"),
    ],
)
def test_each_bad_value_is_named_with_what_is_allowed(
    stack: str, values: dict[str, Any], key: str, fragment: str
) -> None:
    found = problems(stack, **values)
    named = [p for p in found if p.startswith(f"{P}:{key} = ")]
    assert named, found
    assert any(fragment in message for message in named), named
    # Only consequences of the one bad value are reported, never unrelated keys.
    assert len(found) <= 3, found


def test_all_problems_are_reported_together() -> None:
    with pytest.raises(ConfigError) as caught:
        load("dev", natGateways="two", logRetentionDays=8, imageVariant="tpu")
    error = caught.value
    assert len(error.problems) == 3
    text = str(error)
    assert "3 problems" in text
    for key in ("natGateways", "logRetentionDays", "imageVariant"):
        assert f"{P}:{key}" in text


def test_rules_between_keys_are_reported_with_the_bad_keys() -> None:
    # pydantic runs the cross-key rules only on valid keys; the loader still reports both kinds.
    found = problems("dev", natGateways="two", hpaMaxReplicas=5)
    assert [p.split(" = ")[0] for p in found] == [f"{P}:natGateways", f"{P}:gpuNodeMax"], found
    assert "needs 6 (hpaMaxReplicas 5 + 1 rollout surge)" in found[1]


def test_a_rule_about_a_bad_key_is_not_piled_on_top() -> None:
    # gpuNodeMax is not a number: its capacity rule (computed with the default) says nothing.
    assert "must be an integer from 1 to 100" in one_problem(
        "dev", gpuNodeMax="x", hpaMaxReplicas=5
    )


def test_the_config_is_a_frozen_model_that_refuses_unknown_fields() -> None:
    cfg = load("dev")
    with pytest.raises(ValidationError):
        cfg.az_count = 3  # type: ignore[misc]
    data = cfg.model_dump(by_alias=True)
    assert data["availabilityZoneCount"] == 2  # the camelCase keys are the aliases
    data["gpuNodeDesired"] = 3
    with pytest.raises(ValidationError, match="gpuNodeDesired"):
        StackConfig.model_validate(data)


def test_config_error_stops_the_program_cleanly() -> None:
    import pulumi

    assert issubclass(ConfigError, pulumi.RunError)


def test_missing_region_says_how_to_set_it() -> None:
    config = raw()
    del config["aws:region"]
    with pytest.raises(ConfigError, match=r"pulumi config set aws:region us-west-2"):
        load_stack_config("dev", config)


def test_bad_region_is_named() -> None:
    config = raw()
    config["aws:region"] = "Oregon"
    with pytest.raises(ConfigError, match=r"aws:region = 'Oregon'"):
        load_stack_config("dev", config)


def test_unknown_stack_name_without_environment_says_what_to_set() -> None:
    with pytest.raises(ConfigError, match=r"pulumi config set environment"):
        load("feature-x")


def test_plain_text_api_key_is_refused_with_the_secret_command() -> None:
    message = one_problem("dev", apiKey=GOOD_KEY)
    assert "plain text" in message
    assert "pulumi config set --secret apiKey <value>" in message
    assert GOOD_KEY not in message


def test_short_api_key_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as caught:
        load("dev", secret_keys=frozenset({API_KEY}), apiKey="short-key")
    text = str(caught.value)
    assert "at least 24" in text
    assert "pulumi config set --secret apiKey" in text
    assert "short-key" not in text


def test_stack_name_that_cannot_be_a_namespace_is_refused() -> None:
    message = one_problem("Feature_X", environment="pr", clusterStack="dev")
    assert "'inference-Feature_X', not a DNS-1123 label" in message


# ------------------------------------------------------------------ files agree with the code


def project_config() -> dict[str, Any]:
    document = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())
    config: dict[str, Any] = document["config"]
    return config


def test_pulumi_yaml_describes_every_key_the_program_reads() -> None:
    declared = project_config()
    # apiKey is optional and secret; declaring it would make Pulumi require it on every stack.
    assert set(declared) == KNOWN_KEYS - {"apiKey"}
    for key, schema in declared.items():
        assert schema.get("description"), key
        assert schema.get("type") in ("string", "integer", "boolean", "array"), key
        assert "default" in schema, f"{key} without a default would be required on every stack"


def test_pulumi_yaml_defaults_do_not_hide_the_environment_defaults() -> None:
    for key, schema in project_config().items():
        default = schema["default"]
        if key in PER_ENVIRONMENT_KEYS and key != "deletionProtection":
            assert default in ("", -1, []), key
        elif key in COMMON_DEFAULTS:
            assert default == COMMON_DEFAULTS[key], key


#: Pulumi.yaml points here instead of quoting per-environment values (which would be a copy).
ENVIRONMENT_NOTE = (
    "Default: per environment, see infra/environments.py (`python -m infra.environments`)."
)


def test_pulumi_yaml_points_to_the_one_table_instead_of_quoting_it() -> None:
    for key, schema in project_config().items():
        description = " ".join(str(schema["description"]).split())
        # One home per fact: a description never quotes a default ("Default (dev / ...): 2 / 3").
        assert "Default" not in description.replace(ENVIRONMENT_NOTE, ""), key
        if key in PER_ENVIRONMENT_KEYS and key != "deletionProtection":
            assert description.endswith(ENVIRONMENT_NOTE), key
    # Nor does it copy the CloudWatch retention list (infra/aws/limits.py is its home).
    assert "1 3 5 7 14 30" not in (REPO_ROOT / "Pulumi.yaml").read_text()


#: A shipped stack file states only what the stack decides for itself. These keys equal the
#: default and are stated anyway, on purpose: every stack pins its Kubernetes version (upgrades go
#: one stack at a time), and prod states deletionProtection because the Pulumi CLI injects
#: Pulumi.yaml's boolean default (false) into a stack that does not set it.
RESTATED_ON_PURPOSE = {
    *{(stack, "kubernetesVersion") for stack in ("dev", "staging", "prod")},
    ("prod", "deletionProtection"),
}
#: Where a shipped stack file departs from its environment's default on purpose: dev runs CI on
#: GitHub-hosted runners (and says so, with the open endpoint that needs); the default is the
#: secure one.
DELIBERATE_DEVIATIONS = {("dev", "ciRunner")}


def stated(text: str) -> Any:
    """A stack file's config string as the value the defaults table would hold."""
    if text[:1] in "[{" or text in ("true", "false") or text.lstrip("-").isdigit():
        return json.loads(text)
    return text


@pytest.mark.parametrize(
    ("stack", "environment"),
    [("dev", "dev"), ("staging", "staging"), ("prod", "prod"), ("pr-template", "pr")],
)
def test_stack_files_do_not_repeat_the_environment_defaults(stack: str, environment: str) -> None:
    values, _ = read_stack_config(REPO_ROOT / "stacks" / f"Pulumi.{stack}.yaml")
    defaults = defaults_for(Environment(environment))
    for full_key, text in values.items():
        key = full_key.removeprefix(f"{P}:")
        if key not in defaults or (stack, key) in RESTATED_ON_PURPOSE:
            continue
        # A copy would silently stop agreeing with infra/environments.py the day either changes.
        assert stated(text) != defaults[key], f"Pulumi.{stack}.yaml repeats the default of {key}"
        # A deviation from the environment's default per-environment value must be deliberate.
        if key in PER_ENVIRONMENT_KEYS:
            assert (stack, key) in DELIBERATE_DEVIATIONS, f"Pulumi.{stack}.yaml overrides {key}"
    for stack_key in RESTATED_ON_PURPOSE:
        if stack_key[0] == stack:
            assert stated(values[f"{P}:{stack_key[1]}"]) == defaults[stack_key[1]], stack_key


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_shipped_stacks_load_with_their_environment_defaults(stack: str) -> None:
    values, _ = read_stack_config(REPO_ROOT / "stacks" / f"Pulumi.{stack}.yaml")
    cfg = load_stack_config(stack, values)
    defaults = ENVIRONMENT_DEFAULTS[Environment(stack)]
    assert cfg.image_variant is ImageVariant.CUDA
    assert cfg.az_count == defaults["availabilityZoneCount"]
    assert cfg.gpu_nodes.max_size == defaults["gpuNodeMax"]
    assert cfg.log_retention_days == defaults["logRetentionDays"]
    assert cfg.smoke_p99_ms == defaults["smokeP99Ms"]
    assert cfg.scaling.latency_slo_ms == defaults["latencySloMs"]


def with_project_defaults(config: dict[str, str]) -> dict[str, str]:
    """What the Pulumi CLI hands the program: Pulumi.yaml's default for every key not set."""
    config = dict(config)
    for key, schema in project_config().items():
        default = schema["default"]
        if isinstance(default, bool):
            text = "true" if default else "false"
        elif isinstance(default, list):
            text = json.dumps(default)
        else:
            text = str(default)
        config.setdefault(f"{P}:{key}", text)
    return config


@pytest.mark.parametrize("stack", ["dev", "staging", "prod", "pr-7"])
def test_the_cli_injected_project_defaults_change_nothing(stack: str) -> None:
    # The stack files leave most keys to infra/environments.py; under the real CLI those keys
    # arrive as Pulumi.yaml's defaults (sentinels), which must mean exactly the same.
    name = "pr-template" if stack.startswith("pr-") else stack
    values, _ = read_stack_config(REPO_ROOT / "stacks" / f"Pulumi.{name}.yaml")
    plain = load_stack_config(stack, values, now=TODAY)
    injected = load_stack_config(stack, with_project_defaults(values), now=TODAY)
    assert injected == plain


def test_every_long_lived_environment_sets_every_cluster_key() -> None:
    # pr stacks keep the model's "no cluster of my own" field defaults (0 AZs, no node groups);
    # a long-lived environment missing a cluster key would silently get those too.
    cluster_keys = CLUSTER_ONLY_KEYS - COMMON_DEFAULTS.keys()
    for environment in (Environment.DEV, Environment.STAGING, Environment.PROD):
        assert cluster_keys <= ENVIRONMENT_DEFAULTS[environment].keys(), environment
    assert not cluster_keys & ENVIRONMENT_DEFAULTS[Environment.PR].keys()
    assert CLUSTER_ONLY_KEYS <= KNOWN_KEYS


def test_the_environment_table_prints_every_key_for_every_environment() -> None:
    printed = table().splitlines()
    assert printed[0] == "| key | dev | staging | prod | pr |"
    assert len(printed) == 2 + len(PER_ENVIRONMENT_KEYS)
    assert "| logRetentionDays | 7 | 30 | 365 | 3 |" in printed


def test_pr_template_loads_and_sets_only_pr_keys() -> None:
    values, _ = read_stack_config(REPO_ROOT / "stacks" / "Pulumi.pr-template.yaml")
    cfg = load_stack_config("pr-5", values)
    assert cfg.is_ephemeral
    assert cfg.cluster_stack


def test_cluster_keys_at_their_project_defaults_are_accepted_on_pr_stacks() -> None:
    # The CLI injects Pulumi.yaml's defaults into pr stacks too.
    config = with_project_defaults(raw(clusterStack="dev"))
    assert load_stack_config("pr-3", config).is_ephemeral


# ------------------------------------------------------------------ EKS calendar and cluster access


def test_extended_support_is_allowed_with_a_warning_that_names_the_cost() -> None:
    # 1.33 left standard support on 2026-07-29: valid with EXTENDED, at 0.60 instead of 0.10 USD
    # per cluster hour (https://aws.amazon.com/eks/pricing/).
    cfg = load("dev", kubernetesVersion="1.33", upgradeSupportType="EXTENDED")
    assert cfg.upgrade_support_type.value == "EXTENDED"
    (warning,) = cfg.warnings
    assert "extended support until 2027-07-29" in warning
    assert "USD 0.60 per cluster hour instead of 0.10" in warning


def test_the_default_version_is_in_standard_support_and_a_near_deadline_warns() -> None:
    assert load("dev").kubernetes_version == "1.35"
    assert load("dev").warnings == ()
    # 1.34 leaves standard support on 2026-12-02, the day after TODAY.
    (warning,) = load("dev", kubernetesVersion="1.34").warnings
    assert "standard support for Kubernetes 1.34 ends on 2026-12-02" in warning


def test_the_calendar_moves_with_the_date() -> None:
    later = datetime(2027, 4, 1, tzinfo=UTC)
    config = raw(kubernetesVersion="1.35", upgradeSupportType="STANDARD")
    with pytest.raises(ConfigError, match="does not allow upgradeSupportType STANDARD"):
        load_stack_config("dev", config, now=later)


def test_access_is_never_implicit() -> None:
    assert "no role could reach the cluster" in one_problem("dev", deployRoleArns=[])
    cfg = load("dev", adminRoleArns=["arn:aws:iam::123456789012:role/ops"], deployRoleArns=[])
    assert cfg.access_principals == ("arn:aws:iam::123456789012:role/ops",)


def test_a_session_arn_is_refused_in_favour_of_its_role() -> None:
    session = "arn:aws:sts::123456789012:assumed-role/PulumiDeployer/laptop"
    assert "STS session ARN" in one_problem("dev", deployRoleArns=[session])


def test_a_world_open_endpoint_on_a_cluster_that_runs_pr_code_must_be_accepted_explicitly() -> None:
    risky = {
        "endpointPublicAccessCidrs": ["0.0.0.0/0"],
        "ephemeralRoleArns": ["arn:aws:iam::123456789012:role/github-ephemeral"],
        "ciRunner": "github-hosted",
    }
    assert "runs pull-request code" in one_problem("dev", **risky)
    assert load("dev", allowWorldOpenEndpoint=True, **risky).public_access_cidrs == ("0.0.0.0/0",)


def test_github_hosted_runners_cannot_reach_a_private_or_allow_listed_endpoint() -> None:
    problem = one_problem(
        "dev", ciRunner="github-hosted", endpointPublicAccessCidrs=["10.1.0.0/16"]
    )
    assert "no fixed egress addresses" in problem
    cfg = load("staging", endpointPublicAccessCidrs=[], ciRunner="self-hosted-vpc")
    assert cfg.public_access_cidrs == ()


def test_gpu_groups_start_at_their_minimum() -> None:
    cfg = load("dev", gpuNodeMin=0, gpuNodeMax=5)
    assert cfg.gpu_nodes.desired_size == 0
    assert cfg.gpus_needed == cfg.hpa_max_replicas + 1


def test_a_role_of_another_partition_is_refused() -> None:
    role = "arn:aws:iam::123456789012:role/deploy"
    config = raw(deployRoleArns=[role])
    config["aws:region"] = "us-gov-west-1"
    with pytest.raises(ConfigError, match="not a role of the aws-us-gov partition"):
        load_stack_config("dev", config, now=TODAY)
