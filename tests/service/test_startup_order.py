"""Start-up: torch imported before the model thread starts, the cyclic GC off only until served."""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest
import uvicorn

from service.app import create_app, service_runtime
from service.model_loader import LoadedModel, ModelLoadError
from service.preload import TORCH_AUTOLOAD_ENV, ModelPreload, import_torch
from service.server import DrainingServer
from tests.conftest import REPO_ROOT
from tests.service.conftest import settings_for


def test_the_preload_hands_over_the_loaded_model(tiny_model_dir: Path) -> None:
    preload = ModelPreload(settings_for(tiny_model_dir))
    model = preload()
    assert isinstance(model, LoadedModel)
    assert model.signature.name == "digits"
    assert preload.load_seconds is not None


def test_the_preload_raises_the_load_error_where_the_model_is_awaited(tmp_path: Path) -> None:
    preload = ModelPreload(settings_for(tmp_path / "missing"))
    with pytest.raises(ModelLoadError, match="model directory not found"):
        preload()


def test_torch_backend_autoload_is_off_unless_the_environment_asks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(TORCH_AUTOLOAD_ENV, raising=False)
    import_torch()
    assert os.environ[TORCH_AUTOLOAD_ENV] == "0"
    monkeypatch.setenv(TORCH_AUTOLOAD_ENV, "1")
    import_torch()
    assert os.environ[TORCH_AUTOLOAD_ENV] == "1"


def test_main_turns_the_gc_back_on_when_it_returns() -> None:
    # A bad setting ends main() before the server starts (exit 2): the GC must be on again.
    code = (
        "import gc, sys\n"
        "from service.__main__ import main\n"
        "code = main([])\n"
        "print(code, gc.isenabled(), file=sys.stderr)\n"
    )
    env = {**os.environ, "PORT": "not-a-port", "MODEL_URI": "/nonexistent"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stderr.strip().splitlines()[-1] == "2 True"


def test_the_server_turns_the_gc_back_on_once_started(tiny_model_dir: Path) -> None:
    app = create_app(settings_for(tiny_model_dir))
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="off")
    config.load()
    server = DrainingServer(config, service_runtime(app), drain_period_s=0)
    server.lifespan = config.lifespan_class(config)

    async def start_and_stop() -> bool:
        await server.startup()
        try:
            return gc.isenabled()
        finally:
            await server.shutdown()

    gc.disable()
    try:
        assert asyncio.run(start_and_stop())
    finally:
        gc.enable()
        gc.unfreeze()
