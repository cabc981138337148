"""Start loading the model before the web stack is imported, so start-up does both at once.

``python -m service`` spends most of its start-up importing torch and FastAPI and loading the
model. :class:`ModelPreload` imports torch and loads the model on a thread of its own from the
first lines of ``main()``; meanwhile the main thread imports FastAPI and uvicorn and builds the
app. Loading TorchScript and running its first batches happen in C++ with the GIL released, so
they overlap the Python-bound imports. The app's model loader then only waits for the result.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from service.settings import Settings

if TYPE_CHECKING:
    from service.model_loader import LoadedModel


class ModelPreload:
    """Loads ``settings.model_uri`` on a background thread; calling it returns the model."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._model: LoadedModel | None = None
        self._error: BaseException | None = None
        #: Seconds the load took on its thread (torch import excluded), once done.
        self.load_seconds: float | None = None
        self._thread = threading.Thread(target=self._run, name="model-preload", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            import torch

            # OpenMP thread counts are per thread: this one runs the load-time checks.
            torch.set_num_threads(self._settings.torch_threads)
            from service.model_loader import load_model

            started = time.perf_counter()
            self._model = load_model(self._settings.model_uri, self._settings.device)
            self.load_seconds = time.perf_counter() - started
        except BaseException as exc:
            self._error = exc

    def wait(self) -> None:
        """Wait for the load to end, whatever its outcome."""
        self._thread.join()

    def __call__(self) -> LoadedModel:
        """Wait for the load; the model, or the exception the load raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._model is not None
        return self._model
