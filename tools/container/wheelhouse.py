"""The image's Python dependencies: downloaded by pip on the host, handed to the build as an image.

Inside a build container pip cannot be trusted to reach the package index (TLS trust and proxies
differ from the host's), and no registry holds the base images. So pip on the host downloads
every wheel the builder stage installs (``pip download`` with the same constraints and dependency
groups) and the directory is ``docker import``ed as a data-only image, tagged with a hash of its
inputs. ``service/Dockerfile`` mounts that image's ``/wheels`` in its ``wheelhouse`` stage
(``--build-arg WHEELHOUSE=<tag>``) and then installs with ``--no-index``; without the argument the
stage is empty and pip uses the index.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from tools.container.engine import (
    BUILD_DIR,
    REPO_ROOT,
    DockerCli,
    DockerError,
    default_cli,
    progress,
)

#: Version of pip the builder stage upgrades to (``--group`` needs 25.1 or later).
PIP_VERSION = "26.3"
#: The dependency groups of pyproject.toml the builder installs.
GROUPS = ("service", "model")
VARIANTS = ("cpu", "cuda")
IMAGE_REPOSITORY = "torch-eks-wheelhouse"
CONSTRAINTS = REPO_ROOT / "requirements" / "constraints.txt"
PYPROJECT = REPO_ROOT / "pyproject.toml"
#: Where the wheels sit inside the wheelhouse image (the Dockerfile mounts this path).
WHEELS_PATH = "/wheels"


@dataclass(frozen=True)
class Wheelhouse:
    """A downloaded wheelhouse: the host directory and the data-only image made from it."""

    variant: str
    directory: Path
    image: str


def check_variant(variant: str) -> str:
    """Return ``variant`` if it names a torch build the image supports, else raise ValueError."""
    if variant not in VARIANTS:
        raise ValueError(f"torch variant {variant!r} is not one of {', '.join(VARIANTS)}")
    return variant


def dependency_groups() -> str:
    """The groups of pyproject.toml the image installs (``GROUPS``), canonically serialised."""
    with PYPROJECT.open("rb") as handle:
        groups = tomllib.load(handle).get("dependency-groups", {})
    missing = [name for name in GROUPS if name not in groups]
    if missing:
        raise ValueError(f"pyproject.toml has no dependency group {', '.join(missing)}")
    return json.dumps({name: groups[name] for name in GROUPS}, sort_keys=True)


def inputs_digest(variant: str) -> str:
    """Hash of what decides the wheelhouse's content: constraints, dependency groups, variant.

    Only the image's dependency groups of pyproject.toml count, so editing the rest keeps
    the cached wheelhouse (and, through an unchanged build argument, the image's cached layers).
    """
    digest = hashlib.sha256()
    for part in (CONSTRAINTS.read_bytes(), dependency_groups().encode(), variant.encode()):
        digest.update(hashlib.sha256(part).digest())
    digest.update(f"pip=={PIP_VERSION} groups={GROUPS}".encode())
    return digest.hexdigest()[:12]


def wheelhouse_tag(variant: str) -> str:
    """Tag of the wheelhouse image for the current inputs."""
    return f"{IMAGE_REPOSITORY}:{check_variant(variant)}-{inputs_digest(variant)}"


#: pip settings carried over from the configuration files into the CUDA download's environment.
_KEPT_SETTINGS = {
    "global.index-url": "PIP_INDEX_URL",
    "global.extra-index-url": "PIP_EXTRA_INDEX_URL",
    "global.cert": "PIP_CERT",
}


def _pip_config(key: str) -> str | None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "config", "get", key],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or None if result.returncode == 0 else None


def _download_env(variant: str) -> dict[str, str]:
    """Environment for ``pip download``.

    The CPU variant may take wheels from the machine's find-links (where a ``+cpu`` torch may
    lie). The CUDA variant must not: pip would pick that ``+cpu`` build over the index's CUDA one,
    because a local version label sorts higher than the plain release. So for CUDA the config
    files are ignored and only their index URLs and CA bundle are kept; the Linux torch wheel
    on the index is the CUDA build.
    """
    env = dict(os.environ)
    if variant == "cuda":
        kept = {var: _pip_config(key) for key, var in _KEPT_SETTINGS.items()}
        env.pop("PIP_FIND_LINKS", None)
        env["PIP_CONFIG_FILE"] = os.devnull
        for var, value in kept.items():
            if value is not None and var not in env:
                env[var] = value
    return env


def download(variant: str, target: Path) -> None:
    """``pip download`` every wheel the builder stage installs into ``target``."""
    argv = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--only-binary=:all:",
        "--dest",
        str(target),
        "--constraint",
        str(CONSTRAINTS),
        *(arg for group in GROUPS for arg in ("--group", f"{PYPROJECT}:{group}")),
        f"pip=={PIP_VERSION}",
    ]
    result = subprocess.run(
        argv, env=_download_env(variant), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip()[-3000:]
        raise DockerError(f"pip download for the {variant} wheelhouse failed:\n{tail}")
    torch_wheels = sorted(p.name for p in target.glob("torch-*.whl"))
    is_cpu = [name for name in torch_wheels if "+cpu" in name]
    if variant == "cuda" and is_cpu:
        raise DockerError(f"the cuda wheelhouse got a CPU torch ({is_cpu[0]}); check find-links")


def _import(directory: Path, tag: str, cli: DockerCli) -> None:
    tar = subprocess.Popen(
        [
            "tar",
            "--numeric-owner",
            "--owner=0",
            "--group=0",
            "-C",
            str(directory.parent),
            "--transform",
            f"s,^{directory.name},{WHEELS_PATH.lstrip('/')},",
            "-c",
            directory.name,
        ],
        stdout=subprocess.PIPE,
    )
    imported = subprocess.run(
        cli.command("import", "-", tag),
        stdin=tar.stdout,
        capture_output=True,
        text=True,
        check=False,
    )
    if tar.stdout is not None:
        tar.stdout.close()
    if tar.wait() != 0 or imported.returncode != 0:
        raise DockerError(f"docker import of the wheelhouse {directory} failed: {imported.stderr}")


def _remove_stale(variant: str, current: str, cli: DockerCli) -> None:
    """Delete the wheelhouse images and directories of ``variant`` older than ``current``."""
    listed = cli.run("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", IMAGE_REPOSITORY)
    for tag in listed.stdout.split():
        if tag != current and tag.startswith(f"{IMAGE_REPOSITORY}:{variant}-"):
            cli.run("image", "rm", tag, check=False)
    for directory in (BUILD_DIR / "wheelhouse").glob(f"{variant}-*"):
        if directory.name != current.split(":", 1)[1]:
            shutil.rmtree(directory, ignore_errors=True)


def ensure_wheelhouse(variant: str = "cpu", cli: DockerCli | None = None) -> Wheelhouse:
    """Return the wheelhouse of ``variant``, downloading and importing it first when missing."""
    cli = cli or default_cli()
    tag = wheelhouse_tag(variant)
    directory = BUILD_DIR / "wheelhouse" / tag.split(":", 1)[1]
    if cli.run("image", "inspect", tag, check=False).returncode == 0:
        progress(f"wheelhouse {tag}: cached")
        return Wheelhouse(variant, directory, tag)
    started = time.monotonic()
    if not (directory / ".complete").exists():
        progress(f"wheelhouse {tag}: pip download ({variant} torch)")
        directory.parent.mkdir(parents=True, exist_ok=True)
        # Download into a scratch directory and rename it, so an interrupted run is never reused.
        scratch = Path(tempfile.mkdtemp(prefix=f".{variant}-", dir=directory.parent))
        try:
            download(variant, scratch)
            (scratch / ".complete").touch()
            shutil.rmtree(directory, ignore_errors=True)
            scratch.rename(directory)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    progress(f"wheelhouse {tag}: docker import")
    _import(directory, tag, cli)
    _remove_stale(variant, tag, cli)
    size = sum(p.stat().st_size for p in directory.glob("*.whl")) / 1e6
    progress(f"wheelhouse {tag}: {size:.0f} MB ready in {time.monotonic() - started:.0f} s")
    return Wheelhouse(variant, directory, tag)
