"""Import torch, then load the model on a thread of its own while the web stack is imported.

``python -m service`` spends most of its start-up importing torch (about 1 s of CPU here),
importing FastAPI, uvicorn and pydantic (about 0.3 s) and loading the model. Importing is Python
bytecode run under the GIL, so importing torch on one thread while another imports FastAPI does
not overlap them: the two threads only take turns, and each turn costs a GIL handoff (spawn ->
ready, 7 alternating runs on 2 shared cores: 2.39 s median with torch imported on a thread, 2.16 s
with this order alone). :class:`ModelPreload` therefore imports torch on the calling thread,
then fetches and loads the model on a background thread, where what releases the GIL (S3
downloads, reading and hashing the artifact) runs while the main thread imports the web stack.
The app's model loader then only waits for the result.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING

from service.settings import Settings

if TYPE_CHECKING:
    from service.model_loader import LoadedModel

#: torch imports every package that declares a ``torch.backends`` entry point (out-of-tree
#: devices) unless this is "0", and finding them reads the metadata of every installed
#: distribution. The server runs on ``cpu`` or ``cuda`` only (``contract.DEVICES``).
TORCH_AUTOLOAD_ENV = "TORCH_DEVICE_BACKEND_AUTOLOAD"


def import_torch() -> None:
    """Import torch on this thread, without the out-of-tree device backends (unless asked)."""
    os.environ.setdefault(TORCH_AUTOLOAD_ENV, "0")
    import torch  # noqa: F401 - the import itself is the point


class ModelPreload:
    """Loads ``settings.model_uri`` on a background thread; calling it returns the model.

    torch is imported before the thread starts, on the caller's thread (see the module docstring).
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._model: LoadedModel | None = None
        self._error: BaseException | None = None
        #: Seconds the load took on its thread (torch import excluded), once done.
        self.load_seconds: float | None = None
        try:
            import_torch()
        except BaseException as exc:
            # Reported where the model is awaited, like any other failure to load.
            self._error = exc
        self._thread = threading.Thread(target=self._run, name="model-preload", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if self._error is not None:
            return
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
