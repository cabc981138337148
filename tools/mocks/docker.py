"""Docker images (``pulumi_docker.Image``): the digest a build and push would report.

The digest is derived from every build input, so a change to the build (context, Dockerfile,
platform, build args) gives a new digest, as a real rebuild would; the same inputs give the same
digest, so plans are reproducible. ``repoDigest`` is ``<repository>@sha256:<64 hex>``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Final

from tools.mocks.context import ID, Context, OutputFn


def _image(inputs: dict[str, Any], ctx: Context) -> dict[str, Any]:
    image_name = str(inputs.get("imageName") or ctx.name)
    last = image_name.rsplit("/", 1)[-1]
    repository = image_name.rsplit(":", 1)[0] if ":" in last else image_name
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()
    build = inputs.get("build") or {}
    return {
        ID: f"{repository}@sha256:{digest}",
        "imageName": image_name,
        "repoDigest": f"{repository}@sha256:{digest}",
        "baseImageName": image_name,
        "registryServer": image_name.split("/", 1)[0],
        "context": build.get("context", "."),
        "dockerfile": build.get("dockerfile", "Dockerfile"),
        "platform": build.get("platform", ""),
    }


RESOURCES: Final[Mapping[str, OutputFn]] = {"docker:index/image:Image": _image}
