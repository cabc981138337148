"""The deploy step against the real service container: a broken image is caught, rolled back.

The fake Automation API of tests/tools/delivery/test_deploy.py "deploys" an image ref; here the
cluster runs the corresponding container image exactly as the pod runs (``run_like_pod``). The
broken image is the service image with a scrambled ``signature.json`` (labels reversed) layered
on top: it starts, reports ready and answers every request, and only the smoke test's
held-out accuracy check can tell. Needs Docker (a skip, or a failure under REQUIRE_DOCKER=1).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from pulumi import automation as auto

from tests.e2e.container.conftest import READY_TIMEOUT_S
from tests.tools.delivery.test_deploy import BROKEN, OLD_GOOD, SETTINGS, FakeStack
from tools.container.engine import default_cli
from tools.container.image import BuiltImage
from tools.container.pod import PodSpec, run_like_pod
from tools.delivery.deploy import Deps, Target, run


@pytest.fixture(scope="module")
def broken_image(service_image: BuiltImage, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The service image with its model's labels reversed, built on top of it offline."""
    cli = default_cli()
    context = tmp_path_factory.mktemp("broken-image")
    raw = cli.run(
        "run", "--rm", "--entrypoint", "cat", service_image.tag, "/opt/model/signature.json"
    )
    signature = json.loads(raw.stdout)
    signature["labels"] = list(reversed(signature["labels"]))
    (context / "signature.json").write_text(json.dumps(signature))
    (context / "Dockerfile").write_text(
        f"FROM {service_image.tag}\nCOPY signature.json /opt/model/signature.json\n"
    )
    tag = "torch-eks-inference:broken-labels"
    cli.run("build", "--tag", tag, str(context), timeout=600)
    return tag


class ContainerCluster:
    """Runs the container image an image ref stands for, like the pod."""

    def __init__(self, images: Mapping[str, str]) -> None:
        self.images = images

    @contextlib.contextmanager
    def open(self, outputs: Mapping[str, auto.OutputValue]) -> Iterator[Target]:
        spec = PodSpec(self.images[str(outputs["imageRef"].value)])
        with run_like_pod(spec, ready_timeout_s=READY_TIMEOUT_S) as pod:
            yield Target(pod.base_url)


def test_a_broken_container_image_is_caught_and_rolled_back(
    service_image: BuiltImage, broken_image: str, tmp_path: Path
) -> None:
    cluster = ContainerCluster({OLD_GOOD: service_image.tag, BROKEN: broken_image})
    stacks = {"dev": FakeStack("dev", image=OLD_GOOD)}
    printed: list[str] = []
    deps = Deps(open_stack=stacks.__getitem__, open_endpoint=cluster.open, out=printed.append)

    assert run(["--stack", "dev", "--image", BROKEN], deps, SETTINGS) == 1

    assert [u["image"] for u in stacks["dev"].ups] == [BROKEN, OLD_GOOD]
    report = "\n".join(printed)
    assert "is below the gate 0.9700" in report
    assert f"Rolled back to `{OLD_GOOD}`: verified" in report
