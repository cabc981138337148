"""Two minimal peers: what a few lines of FastAPI do with the same model, batched and unbatched.

``--batched``: FastAPI on uvicorn, ``POST /predict`` puts the decoded rows on an
``asyncio.Queue``; one collector task takes up to ``--max-batch-size`` rows or waits
``--batch-timeout-ms`` after the first (a plain batch-or-timeout batcher), runs the forward pass
on one executor thread and hands each request its rows. ``--unbatched``: the same app calling the
model once per request, on the event loop (for a model this small a thread handoff costs more
than the forward pass). Neither logs, keeps metrics, authenticates or limits anything: that is the
point of the comparison. Both load the model with our loader and use our ``/predict`` codec, so
the bytes in and out are the same as our server's.

    python -m benchmarks.minimal_peers --model-dir DIR --port 8000 --batched \
        --max-batch-size 32 --batch-timeout-ms 5 --torch-threads 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import torch
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from benchmarks.http_floor import HEALTH_PATH
from service.model_loader import LoadedModel, load_model
from service.predict_codec import decode_predict_request, encode_predictions

Arrays = dict[str, np.ndarray]


def _forward(model: LoadedModel, inputs: Arrays) -> Arrays:
    with torch.inference_mode():
        outputs = model.forward({name: torch.from_numpy(a) for name, a in inputs.items()})
    return {name: tensor.numpy() for name, tensor in outputs.items()}


class QueueBatcher:
    """Batch-or-timeout on an ``asyncio.Queue``, forward passes on one executor thread."""

    def __init__(self, model: LoadedModel, max_batch_size: int, timeout_s: float) -> None:
        self.model = model
        self.max_batch_size = max_batch_size
        self.timeout_s = timeout_s
        self.queue: asyncio.Queue[tuple[Arrays, asyncio.Future[Arrays]]] = asyncio.Queue()
        self.executor = ThreadPoolExecutor(max_workers=1)

    async def run(self) -> None:
        """Collect batches forever."""
        loop = asyncio.get_running_loop()
        while True:
            items = [await self.queue.get()]
            deadline = loop.time() + self.timeout_s
            while len(items) < self.max_batch_size:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    items.append(await asyncio.wait_for(self.queue.get(), remaining))
                except TimeoutError:
                    break
            inputs = {
                name: np.concatenate([arrays[name] for arrays, _ in items]) for name in items[0][0]
            }
            outputs = await loop.run_in_executor(self.executor, _forward, self.model, inputs)
            offset = 0
            for arrays, future in items:
                rows = next(iter(arrays.values())).shape[0]
                future.set_result({n: a[offset : offset + rows] for n, a in outputs.items()})
                offset += rows


def create_app(model: LoadedModel, batcher: QueueBatcher | None) -> FastAPI:
    """The peer app; ``batcher`` None runs the model inline, once per request."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = None if batcher is None else asyncio.create_task(batcher.run())
        yield
        if task is not None:
            task.cancel()

    app = FastAPI(lifespan=lifespan)

    @app.get(HEALTH_PATH)
    async def health() -> dict[str, bool]:
        return {"ready": True}

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        inputs = decode_predict_request(json.loads(await request.body()), model.signature)
        if batcher is None:
            outputs = _forward(model, inputs)
        else:
            future: asyncio.Future[Arrays] = asyncio.get_running_loop().create_future()
            await batcher.queue.put((inputs, future))
            outputs = await future
        return JSONResponse(
            {
                "model_name": model.signature.name,
                "model_version": model.signature.version,
                "predictions": encode_predictions(outputs, model.signature),
            }
        )

    return app


def main(argv: list[str] | None = None) -> None:
    """Serve one of the two peers on 127.0.0.1."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--batched", action="store_true")
    mode.add_argument("--unbatched", action="store_true")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--batch-timeout-ms", type=float, default=5.0)
    parser.add_argument("--torch-threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.torch_threads)
    model = load_model(str(args.model_dir), "cpu")
    batcher = None
    if args.batched:
        batcher = QueueBatcher(model, args.max_batch_size, args.batch_timeout_ms / 1000)
        # OpenMP thread counts are per thread: the executor's one thread sets its own.
        batcher.executor.submit(torch.set_num_threads, args.torch_threads).result()
    uvicorn.run(
        create_app(model, batcher),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
