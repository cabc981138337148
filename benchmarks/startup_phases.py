"""Where start-up's time goes: each phase of ``python -m service`` timed alone, in a fresh process.

    python -m benchmarks.startup_phases MODEL_DIR     # one child run, prints its phases as JSON

The server's threads share one GIL, so its phases cannot be read off one run of the server: the
child here runs the same steps one after the other, in the order the server runs them, with the
cyclic GC off as the server has it, and times each (wall and CPU). ``benchmarks.startup`` runs
it several times next to the real server and puts the medians in its table; what is left of the
server's spawn -> ready after these phases is uvicorn's start, the threads and the probe.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from service.model_loader import LoadedModel
    from service.settings import Settings

#: The phases, in the order the server runs them, with what each one covers.
PHASES: Final = (
    ("interpreter", "interpreter start, `site`, up to the first line of `service.__main__`"),
    ("settings", "pydantic + `service.settings`, environment read and validated"),
    ("torch", "`import torch` (numpy with it)"),
    ("web stack", "`import fastapi, uvicorn` (starlette, pydantic models of FastAPI)"),
    ("service modules", "`service.app`, `.server`, `.inference_protocol`: routes, schemas"),
    ("app build", "`create_app`: runtime, middleware, OpenAPI hook"),
    ("model load", "TorchScript load, sha256, signature check on batches of 1 and 2"),
    ("warm-up", "one batch of each size the batcher forms first and last (1, max batch)"),
)


def _timed(step: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    step()
    return time.perf_counter() - wall, time.process_time() - cpu


class _Startup:
    """The server's start-up steps, one method each, sharing what the earlier ones built."""

    def __init__(self, model_dir: Path) -> None:
        self.env = {**os.environ, "MODEL_URI": str(model_dir)}
        self.settings: Settings | None = None
        self.model: LoadedModel | None = None

    def load_settings(self) -> None:
        from service.settings import load_settings

        self.settings = load_settings(self.env)

    def import_torch(self) -> None:
        from service.preload import import_torch

        import_torch()

    def import_web_stack(self) -> None:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401

    def import_service(self) -> None:
        import service.app
        import service.inference_protocol
        import service.server  # noqa: F401

    def build_app(self) -> None:
        from service.app import create_app

        assert self.settings is not None
        create_app(self.settings, loader=self.loaded)

    def load_model(self) -> None:
        import torch

        from service.model_loader import load_model

        assert self.settings is not None
        torch.set_num_threads(self.settings.torch_threads)
        self.model = load_model(self.settings.model_uri, self.settings.device)

    def warm_up(self) -> None:
        assert self.settings is not None
        self.loaded().warmup(sorted({1, self.settings.max_batch_size}))

    def loaded(self) -> LoadedModel:
        assert self.model is not None
        return self.model


def run_phases(model_dir: Path) -> dict[str, tuple[float, float]]:
    """Run the server's start-up steps one by one; (wall s, CPU s) of each, by phase name."""
    from service.process_clock import seconds_since_process_start

    gc.disable()
    times = {"interpreter": (seconds_since_process_start() or 0.0, time.process_time())}
    run = _Startup(model_dir)
    steps = (
        run.load_settings,
        run.import_torch,
        run.import_web_stack,
        run.import_service,
        run.build_app,
        run.load_model,
        run.warm_up,
    )
    for (name, _), step in zip(PHASES[1:], steps, strict=True):
        times[name] = _timed(step)
    return times


def main(argv: list[str] | None = None) -> int:
    """Child entry point: run the phases on MODEL_DIR, print them as one JSON object."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m benchmarks.startup_phases MODEL_DIR", file=sys.stderr)
        return 2
    print(json.dumps(run_phases(Path(args[0]))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
