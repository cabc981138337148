"""The deploy step end to end, offline: a fake Automation API, the real service as the cluster.

Every ``up`` of the fake stack "deploys" the image its config names; the fake cluster then runs
that image as the real ``python -m service`` process with the model the image carries, and the
smoke test's checks run for real against it over HTTP. A broken image is the bundled model with
its labels scrambled (it loads, answers and is wrong), which only the accuracy check can catch.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from pulumi import automation as auto
from pulumi.automation._cmd import CommandResult

from tools.delivery.deploy import (
    IMAGE_REF_KEY,
    Deps,
    Target,
    forward_command,
    run,
    smoke_settings,
)
from tools.delivery.smoke import SmokeSettings, packaging_gate, run_smoke
from tools.delivery.stacks import POLICY_PACK
from tools.local_server import LocalServer

REGISTRY = "123456789012.dkr.ecr.us-west-2.amazonaws.com/torch-eks-inference/dev"
GOOD = f"{REGISTRY}@sha256:{'a' * 64}"
OLD_GOOD = f"{REGISTRY}@sha256:{'b' * 64}"
BROKEN = f"{REGISTRY}@sha256:{'c' * 64}"
NOT_LOADING = f"{REGISTRY}@sha256:{'d' * 64}"
POLICY = "prod-image-promoted-from-staging"


@pytest.fixture(scope="module")
def images(packaged_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Image ref -> the model directory that image carries."""
    root = tmp_path_factory.mktemp("images")
    broken = root / "broken"
    shutil.copytree(packaged_model_dir, broken)
    signature = json.loads((broken / "signature.json").read_text())
    signature["labels"] = list(reversed(signature["labels"]))  # loads fine, answers wrong
    (broken / "signature.json").write_text(json.dumps(signature))
    not_loading = root / "not-loading"
    shutil.copytree(packaged_model_dir, not_loading)
    (not_loading / "model.ts").write_bytes(b"not a model")  # sha256 mismatch: never ready
    return {
        GOOD: packaged_model_dir,
        OLD_GOOD: packaged_model_dir,
        BROKEN: broken,
        NOT_LOADING: not_loading,
    }


def _digest(ref: str) -> str:
    return ref.rpartition("@")[2]


class FakeStack:
    """A stack as the Automation API shows it; ``up`` deploys the image its config names."""

    def __init__(
        self, name: str, image: str | None = None, fail_up: frozenset[str] = frozenset()
    ) -> None:
        self.name = name
        self.config: dict[str, str] = {}
        self.out: dict[str, auto.OutputValue] = {}
        self.ups: list[dict[str, Any]] = []
        self.fail_up = fail_up
        if image is not None:
            self._deployed(image)

    def _deployed(self, image: str) -> None:
        self.out["imageRef"] = auto.OutputValue(image, False)
        self.out["imageDigest"] = auto.OutputValue(_digest(image), False)
        self.out["kubeconfig"] = auto.OutputValue('{"kind": "Config"}', True)

    def set_config(self, key: str, value: auto.ConfigValue, *, path: bool = False) -> None:
        self.config[key] = value.value

    def outputs(self) -> Mapping[str, auto.OutputValue]:
        return dict(self.out)

    def up(self, **kwargs: Any) -> Any:
        image = self.config[IMAGE_REF_KEY]
        configs = [json.loads(Path(p).read_text()) for p in kwargs.get("policy_pack_configs") or []]
        self.ups.append({"image": image, "policy_configs": configs, **kwargs})
        if image in self.fail_up:
            raise auto.CommandError(
                CommandResult("", "error: update failed: rollout timed out", 255)
            )
        self._deployed(image)
        return None


class FakeCluster:
    """Runs the image a stack's outputs name, as the real service process."""

    def __init__(self, images: Mapping[str, Path], logs: Path) -> None:
        self.images, self.logs, self.started = images, logs, 0

    @contextlib.contextmanager
    def open(self, outputs: Mapping[str, auto.OutputValue]) -> Iterator[Target]:
        ref = str(outputs["imageRef"].value)
        self.started += 1
        server = LocalServer(
            self.images[ref],
            log_path=self.logs / f"server-{self.started}.log",
            env={"DEVICE": "cpu"},
        ).start()
        try:
            yield Target(server.base_url)
        finally:
            server.terminate()


SETTINGS = SmokeSettings(
    p99_slo_ms=2000.0,  # generous: two CPU cores shared by several agents run this
    min_accuracy=packaging_gate(),
    ready_timeout_s=60.0,
    requests=40,
    concurrency=2,
)


def _deps(stacks: dict[str, FakeStack], cluster: FakeCluster, printed: list[str]) -> Deps:
    return Deps(open_stack=stacks.__getitem__, open_endpoint=cluster.open, out=printed.append)


def test_a_good_image_is_deployed_smoke_tested_and_printed(
    images: dict[str, Path], tmp_path: Path
) -> None:
    stacks = {"dev": FakeStack("dev", image=OLD_GOOD)}
    printed: list[str] = []
    summary = tmp_path / "summary.md"
    code = run(
        ["--stack", "dev", "--image", GOOD, "--summary", str(summary)],
        _deps(stacks, FakeCluster(images, tmp_path), printed),
        SETTINGS,
    )
    assert code == 0, "\n".join(printed)
    assert printed[-1] == f"verified-image={GOOD}"
    (up,) = stacks["dev"].ups
    assert up["image"] == GOOD
    assert up["policy_packs"] == [str(POLICY_PACK)]
    assert up["plan"] is None
    assert up["policy_configs"] == []
    text = summary.read_text()
    assert "Result: verified" in text
    assert "Smoke test **passed**" in text
    assert "0.99" in text  # the bundled model's held-out accuracy, measured over HTTP


def test_a_broken_model_in_prod_is_caught_and_rolled_back(
    images: dict[str, Path], tmp_path: Path
) -> None:
    # staging verified BROKEN (say its smoke SLO was looser); prod ran OLD_GOOD before.
    stacks = {
        "prod": FakeStack("prod", image=OLD_GOOD),
        "staging": FakeStack("staging", image=BROKEN),
    }
    plan = tmp_path / "prod-plan.json"
    plan.write_text("{}")
    printed: list[str] = []
    summary = tmp_path / "summary.md"
    code = run(
        ["--stack", "prod", "--image", BROKEN, "--plan", str(plan), "--summary", str(summary)],
        _deps(stacks, FakeCluster(images, tmp_path), printed),
        SETTINGS,
    )
    assert code == 1
    assert not any(line.startswith("verified-image=") for line in printed)
    first, rollback = stacks["prod"].ups
    # The approved plan is applied as saved; the pack learns staging's digest.
    assert first["image"] == BROKEN
    assert first["plan"] == str(plan)
    assert first["policy_configs"] == [{POLICY: {"stagingImageDigest": _digest(BROKEN)}}]
    # The rollback re-deploys what prod ran before, admitted by the pack as the rollback digest.
    assert rollback["image"] == OLD_GOOD
    assert rollback["plan"] is None
    assert rollback["policy_configs"] == [
        {POLICY: {"stagingImageDigest": _digest(BROKEN), "rollbackImageDigest": _digest(OLD_GOOD)}}
    ]
    assert stacks["prod"].out["imageRef"].value == OLD_GOOD
    text = summary.read_text()
    assert "held-out accuracy" in text
    assert "is below the gate 0.9700" in text
    assert f"Rolled back to `{OLD_GOOD}`: verified" in text


def test_prod_refuses_a_digest_staging_does_not_run(
    images: dict[str, Path], tmp_path: Path
) -> None:
    stacks = {
        "prod": FakeStack("prod", image=OLD_GOOD),
        "staging": FakeStack("staging", image=OLD_GOOD),
    }
    printed: list[str] = []
    code = run(
        ["--stack", "prod", "--image", GOOD],
        _deps(stacks, FakeCluster(images, tmp_path), printed),
        SETTINGS,
    )
    assert code == 1
    assert stacks["prod"].ups == []
    assert stacks["prod"].config == {}
    assert any("**Refused:**" in line and "not the digest staging runs" in line for line in printed)


def test_a_failed_up_rolls_back_and_a_service_that_never_gets_ready_fails(
    images: dict[str, Path], tmp_path: Path
) -> None:
    stacks = {"dev": FakeStack("dev", image=NOT_LOADING, fail_up=frozenset({GOOD}))}
    printed: list[str] = []
    settings = SmokeSettings(**{**SETTINGS.__dict__, "ready_timeout_s": 8.0})
    code = run(
        ["--stack", "dev", "--image", GOOD],
        _deps(stacks, FakeCluster(images, tmp_path), printed),
        settings,
    )
    assert code == 1
    assert [u["image"] for u in stacks["dev"].ups] == [GOOD, NOT_LOADING]
    report = "\n".join(printed)
    assert "error: update failed: rollout timed out" in report
    assert "**failed too**" in report
    assert "not ready within 8 s" in report


def test_nothing_to_roll_back_to_on_a_first_deploy(images: dict[str, Path], tmp_path: Path) -> None:
    stacks = {"dev": FakeStack("dev", fail_up=frozenset({GOOD}))}
    printed: list[str] = []
    assert (
        run(
            ["--stack", "dev", "--image", GOOD],
            _deps(stacks, FakeCluster(images, tmp_path), printed),
            SETTINGS,
        )
        == 1
    )
    assert len(stacks["dev"].ups) == 1
    assert any("No previous image to roll back to" in line for line in printed)


def test_usage_errors_name_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    deps = Deps(
        open_stack=lambda name: pytest.fail("no stack may be opened"),
        open_endpoint=lambda o: pytest.fail("no"),
    )
    assert run(["--stack", "dev", "--image", f"{REGISTRY}:latest"], deps, SETTINGS) == 2
    assert "not an image by digest" in capsys.readouterr().err
    missing = tmp_path / "nope.json"
    assert run(["--stack", "prod", "--image", GOOD, "--plan", str(missing)], deps, SETTINGS) == 2
    assert "does not exist" in capsys.readouterr().err


def test_summary_goes_to_the_github_step_summary_by_default(
    images: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    stacks = {
        "prod": FakeStack("prod", image=OLD_GOOD),
        "staging": FakeStack("staging", image=OLD_GOOD),
    }
    run(
        ["--stack", "prod", "--image", GOOD],
        _deps(stacks, FakeCluster(images, tmp_path), []),
        SETTINGS,
    )
    text = summary.read_text()
    assert text.startswith("earlier step\n")
    assert "### Deploy `prod`" in text


def test_the_gate_is_read_from_the_packager_without_importing_torch(tmp_path: Path) -> None:
    from model.package import DEFAULT_MIN_ACCURACY

    assert packaging_gate() == DEFAULT_MIN_ACCURACY
    moved = tmp_path / "package.py"
    moved.write_text("import torch\nDEFAULT_MIN_ACCURACY: Final = 0.99\n")
    assert packaging_gate(moved) == 0.99
    moved.write_text("MIN = 0.9\n")
    with pytest.raises(ValueError, match="defines no DEFAULT_MIN_ACCURACY"):
        packaging_gate(moved)


def test_each_stack_has_its_own_smoke_slo_from_config() -> None:
    assert [smoke_settings(s).p99_slo_ms for s in ("dev", "staging", "prod")] == [
        500.0,
        300.0,
        250.0,
    ]
    assert smoke_settings("prod").min_accuracy == packaging_gate() == 0.97


def test_the_smoke_test_fails_a_service_slower_than_its_slo(
    packaged_model_dir: Path, tmp_path: Path
) -> None:
    with LocalServer(
        packaged_model_dir, log_path=tmp_path / "s.log", env={"DEVICE": "cpu"}
    ).start() as server:
        strict = SmokeSettings(**{**SETTINGS.__dict__, "p99_slo_ms": 0.001})
        report = run_smoke(server.base_url, strict)
    assert report.accuracy is not None
    assert report.accuracy >= 0.97
    assert not report.passed
    assert any("p99 latency" in f and "exceeds the SLO 0 ms" in f for f in report.failures)


def test_port_forward_command_uses_our_kubeconfig_loopback_and_port() -> None:
    outputs = {
        "portForwardCommand": auto.OutputValue(
            "kubectl -n inference port-forward svc/inference 8080:80", False
        )
    }
    assert forward_command(outputs, Path("/tmp/k"), 41234) == [
        "kubectl",
        "--kubeconfig",
        "/tmp/k",
        "-n",
        "inference",
        "port-forward",
        "svc/inference",
        "--address",
        "127.0.0.1",
        "41234:80",
    ]
    with pytest.raises(ValueError, match="not a kubectl port-forward"):
        forward_command({"portForwardCommand": auto.OutputValue("rm -rf /", False)}, Path("/k"), 1)
