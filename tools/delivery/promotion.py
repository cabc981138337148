"""Promotion of one image by digest: dev -> staging -> prod, and what the policy pack is told.

CI builds and pushes the image once per commit; every long-lived stack then runs that digest
(config ``imageRef``). The policy pack refuses a prod deployment whose digest is not the one
staging runs; it learns staging's digest from its policy config, which this module writes from
staging's ``imageDigest`` stack output.

    python -m tools.delivery.promotion --image REPO@sha256:<64 hex>   # the mock plans, offline

prints, for dev, staging and prod, the image each stack's Deployment would run with that ref
(the program run under mocks): the same digest everywhere, and no docker build anywhere.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from infra.config import IMAGE_REF, PROJECT, Environment

LONG_LIVED = tuple(e.value for e in Environment if e is not Environment.PR)
#: The stack whose verified digest prod may run, and the policy that enforces it.
PROMOTION_SOURCE = {"staging": "dev", "prod": "staging"}
#: The pack's promotion rule and its config keys. policy/guardrails/promotion.py has its own copy
#: (the pack imports nothing of ours, so it can be published alone); tests/test_facts.py holds
#: the two equal, and the rest of tools/ imports these.
POLICY_NAME = "prod-image-promoted-from-staging"
POLICY_KEY = "stagingImageDigest"
ROLLBACK_KEY = "rollbackImageDigest"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
DOCKER_IMAGE = "docker:index/image:Image"


class PromotionError(Exception):
    """An image reference or a stack output is not what promotion needs."""


def digest_of(image_ref: str) -> str:
    """``sha256:<hex>`` of a reference by digest; a clear error for anything else."""
    if not IMAGE_REF.match(image_ref):
        raise PromotionError(
            f"{image_ref!r} is not an image by digest: <registry>/<repository>@sha256:<64 hex>"
        )
    return image_ref.rpartition("@")[2]


_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def policy_config(
    staging_digest: str, rollback_digest: str | None = None
) -> dict[str, dict[str, str]]:
    """The ``--policy-pack-config`` document that lets prod run ``staging_digest`` only.

    ``rollback_digest`` (the digest prod ran before a failed deploy) is admitted too, for the
    automatic rollback only.
    """
    properties = {POLICY_KEY: staging_digest}
    if rollback_digest is not None:
        properties[ROLLBACK_KEY] = rollback_digest
    for digest in properties.values():
        if not _DIGEST.match(digest):
            raise PromotionError(f"{digest!r} is not a sha256 digest (sha256:<64 hex>)")
    return {POLICY_NAME: properties}


def write_policy_config(path: Path, config: Mapping[str, Mapping[str, str]]) -> Path:
    """Write a policy pack config document (``--policy-pack-config``) and return its path."""
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def configure_pack(stub: Any, config: Mapping[str, Any]) -> None:
    """Send a ``--policy-pack-config`` document to a running pack, as the engine does.

    Each entry is an enforcement level (``"disabled"``) or an object of properties with an
    optional ``enforcementLevel``, the format the Pulumi CLI parses (pulumi/pulumi,
    pkg/resource/plugin ``parsePolicyPackConfig``). The engine passes them to the Analyzer's
    ``Configure``; the Python policy runtime keeps them for every later ``Analyze``.
    """
    from google.protobuf import struct_pb2
    from pulumi.runtime.proto import analyzer_pb2

    levels = {
        "advisory": analyzer_pb2.EnforcementLevel.ADVISORY,
        "mandatory": analyzer_pb2.EnforcementLevel.MANDATORY,
        "disabled": analyzer_pb2.EnforcementLevel.DISABLED,
    }
    entries = {}
    for name, value in config.items():
        properties = {} if isinstance(value, str) else dict(value)
        level = value if isinstance(value, str) else properties.pop("enforcementLevel", "mandatory")
        if level not in levels:
            raise PromotionError(f"{name}: {level!r} is not an enforcement level")
        struct = struct_pb2.Struct()
        struct.update(properties)
        entries[name] = analyzer_pb2.PolicyConfig(enforcementLevel=levels[level], properties=struct)
    stub.Configure(analyzer_pb2.ConfigureAnalyzerRequest(policyConfig=entries))


def plan_images(image_ref: str, stacks: Sequence[str] = LONG_LIVED) -> dict[str, dict[str, Any]]:
    """Per stack, under mocks with ``imageRef = image_ref``: Deployment images and builds."""
    from tools.plan import config_file, read_stack_config, run_program

    digest_of(image_ref)
    found: dict[str, dict[str, Any]] = {}
    for stack in stacks:
        values, secret_keys = read_stack_config(config_file(stack))
        values[f"{PROJECT}:imageRef"] = image_ref
        run = run_program(stack, config=values, secret_keys=secret_keys)
        images = [
            container["image"]
            for r in run.registrations
            if r.type == DEPLOYMENT
            for container in r.inputs["spec"]["template"]["spec"]["containers"]
        ]
        builds = sum(r.type == DOCKER_IMAGE for r in run.registrations)
        found[stack] = {"images": images, "builds": builds, "output": run.outputs["imageDigest"]}
    return found


def offline_staging_digest() -> str:
    """Staging's ``imageDigest`` output in its mock plan (what ``policy-check`` configures)."""
    from tools.plan import run_program

    return str(run_program("staging").outputs["imageDigest"])


def render(found: Mapping[str, Mapping[str, Any]]) -> str:
    """A Markdown table: stack, the digest its Deployment runs, docker builds declared."""
    lines = ["| stack | Deployment image digest | docker builds |", "| --- | --- | --- |"]
    for stack, row in found.items():
        digests = sorted({str(i).rpartition("@")[2] for i in row["images"]})
        lines.append(f"| {stack} | `{', '.join(digests)}` | {row['builds']} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Print the promoted digest per long-lived stack, from the mock plans; 1 if they differ."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.delivery.promotion",
        description="Show that one image ref gives the same digest on dev, staging and prod.",
    )
    parser.add_argument("--image", required=True, help="REGISTRY/REPO@sha256:<64 hex>")
    args = parser.parse_args(argv)
    try:
        found = plan_images(args.image)
    except PromotionError as exc:
        print(f"promotion: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(render(found))
    digests = {str(i).rpartition("@")[2] for row in found.values() for i in row["images"]}
    return 0 if len(digests) == 1 and not any(row["builds"] for row in found.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
