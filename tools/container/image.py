"""Building the service's image from ``service/Dockerfile`` with BuildKit, online or offline.

Offline (the default here and in CI) the base image comes from ``base_image`` and the wheels from
``wheelhouse``; online the Dockerfile's own defaults apply (``python:3.11-slim-bookworm`` and the
package index). Either way it is the same Dockerfile and the same build context (the repository
root, trimmed by ``.dockerignore``).
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tools.container.base_image import ensure_base_image
from tools.container.engine import (
    REPO_ROOT,
    DockerCli,
    DockerError,
    buildkit_cli,
    default_cli,
    progress,
)
from tools.container.wheelhouse import check_variant, ensure_wheelhouse

DOCKERFILE = REPO_ROOT / "service" / "Dockerfile"
IMAGE_REPOSITORY = "torch-eks-inference"


def default_tag(variant: str) -> str:
    """The local tag an image of ``variant`` gets unless one is given."""
    return f"{IMAGE_REPOSITORY}:{check_variant(variant)}"


@dataclass(frozen=True)
class BuiltImage:
    """An image the engine now holds."""

    tag: str
    image_id: str
    size_bytes: int
    seconds: float


def git_revision() -> str:
    """The commit the working tree is at (``unknown`` outside a git checkout)."""
    result = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def build_args(
    variant: str, offline: bool, base_image: str | None, revision: str
) -> dict[str, str]:
    """The ``--build-arg`` values of one build (missing base/wheelhouse are made when offline)."""
    args = {"TORCH_VARIANT": check_variant(variant), "REVISION": revision}
    if base_image is not None:
        args["BASE_IMAGE"] = base_image
    if offline:
        args.setdefault("BASE_IMAGE", ensure_base_image())
        args["WHEELHOUSE"] = ensure_wheelhouse(variant).image
    return args


def build_image(
    variant: str = "cpu",
    tag: str | None = None,
    *,
    offline: bool = True,
    base_image: str | None = None,
    verbose: bool = False,
    context: Path = REPO_ROOT,
    cli: DockerCli | None = None,
) -> BuiltImage:
    """Build the service image of ``variant`` and tag it; returns its id and size.

    ``offline`` builds the Debian base with debootstrap and installs wheels downloaded on the
    host; otherwise the base is pulled and pip uses the index. ``verbose`` streams BuildKit's
    plain progress output instead of printing it only when the build fails. ``context`` is the
    build context (the repository root; the benchmark passes a copy it can edit, or an older
    revision's tree); the Dockerfile is the context's own ``service/Dockerfile``.
    """
    tag = tag or default_tag(variant)
    builder = cli or buildkit_cli()
    args = build_args(variant, offline, base_image, git_revision())
    dockerfile = context / DOCKERFILE.relative_to(REPO_ROOT)
    argv = ["build", "--file", str(dockerfile), "--tag", tag, "--progress", "plain"]
    for name, value in sorted(args.items()):
        argv += ["--build-arg", f"{name}={value}"]
    argv.append(str(context))
    progress(f"image {tag}: docker build ({variant}, {'offline' if offline else 'online'})")
    previous = default_cli().run("image", "inspect", "--format", "{{.Id}}", tag, check=False)
    started = time.monotonic()
    result = builder.run(*argv, capture=not verbose, check=False)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        detail = "" if verbose else "\n" + (result.stderr or "").strip()[-4000:]
        raise DockerError(f"docker build of {tag} failed (exit {result.returncode}){detail}")
    fields = (
        default_cli().run("image", "inspect", "--format", "{{.Id}} {{.Size}}", tag).stdout.split()
    )
    built = BuiltImage(tag, fields[0], int(fields[1]), seconds)
    old_id = previous.stdout.strip()
    if previous.returncode == 0 and old_id != built.image_id:
        # The tag moved on; drop the image it left behind (refused, harmlessly, while in use).
        default_cli().run("image", "rm", old_id, check=False)
    progress(f"image {tag}: {built.size_bytes / 1e9:.2f} GB, built in {seconds:.1f} s")
    return built
