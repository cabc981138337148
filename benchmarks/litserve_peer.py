"""The peer: LitServe serving the same TorchScript model with the same batching and worker count.

For a fair comparison this server differs from ours only in the serving machinery. It loads the
model with our loader (same artifact, same device, same torch thread count), decodes the request
and encodes the response with our ``/predict`` codec (same validation, same JSON out), and uses
LitServe's own batching with our ``MAX_BATCH_SIZE`` and ``BATCH_TIMEOUT_MS`` and one inference
worker. What stays LitServe's is everything in between: its HTTP server process, the queues to
its inference worker process (over ZeroMQ: ``fast_queue=True``, which LitServe advises above
100 requests per second), its batch collection and its response path.

    python -m benchmarks.litserve_peer --model-dir build/model --port 8000 \
        --max-batch-size 32 --batch-timeout-ms 5 --torch-threads 1
"""

# No ``from __future__ import annotations`` here: LitServe reads the annotation of
# ``decode_request``'s parameter at run time and needs the real ``Request`` class there.
import argparse
from pathlib import Path
from typing import Any

import litserve as ls
import numpy as np
import torch
from fastapi import HTTPException, Request

from service.errors import BadRequestError
from service.model_loader import load_model
from service.predict_codec import decode_predict_request, encode_predictions
from service.signature import ModelSignature

Arrays = dict[str, np.ndarray]


class TorchScriptAPI(ls.LitAPI):  # type: ignore[misc]  # litserve ships no type hints
    """A LitAPI around a model directory, speaking our ``/predict`` format."""

    def __init__(
        self, model_dir: Path, torch_threads: int, max_batch_size: int, batch_timeout_ms: float
    ) -> None:
        super().__init__(
            max_batch_size=max_batch_size,
            batch_timeout=batch_timeout_ms / 1000,
            api_path="/predict",
        )
        self.model_dir = model_dir
        self.torch_threads = torch_threads
        self._rows: list[int] = []

    def setup(self, device: str) -> None:
        """Load the model in the inference worker process, with the server's thread count."""
        torch.set_num_threads(self.torch_threads)
        self.signature = ModelSignature.read(self.model_dir)
        self.model = load_model(str(self.model_dir), "cpu")

    def decode_request(self, request: Request) -> Arrays:
        """Our ``/predict`` decoder: one array per input; a bad body is a 400.

        LitServe parses the JSON body in its API server process and hands this method the
        parsed document, despite the annotation (which only tells it to do so).
        """
        try:
            return decode_predict_request(request, self.signature)
        except BadRequestError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None

    def batch(self, inputs: list[Arrays]) -> Arrays:
        """Stack the requests' rows; remember how many each brought, to split the outputs."""
        self._rows = [next(iter(arrays.values())).shape[0] for arrays in inputs]
        return {name: np.concatenate([arrays[name] for arrays in inputs]) for name in inputs[0]}

    def predict(self, x: Arrays) -> Arrays:
        """One forward pass of the whole batch."""
        with torch.inference_mode():
            outputs = self.model.forward({name: torch.from_numpy(a) for name, a in x.items()})
        return {name: tensor.numpy() for name, tensor in outputs.items()}

    def unbatch(self, output: Arrays) -> list[Arrays]:
        """Split the batch's outputs back into one dict per request."""
        parts: list[Arrays] = []
        offset = 0
        for rows in self._rows:
            parts.append({name: array[offset : offset + rows] for name, array in output.items()})
            offset += rows
        return parts

    def encode_response(self, output: Arrays) -> dict[str, Any]:
        """Our ``/predict`` response body."""
        return {
            "model_name": self.signature.name,
            "model_version": self.signature.version,
            "predictions": encode_predictions(output, self.signature),
        }


def main(argv: list[str] | None = None) -> None:
    """Serve the model on 127.0.0.1 with one API server and one inference worker."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-batch-size", type=int, required=True)
    parser.add_argument("--batch-timeout-ms", type=float, required=True)
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument(
        "--queue",
        choices=("zmq", "manager"),
        default="zmq",
        help="LitServe's transport between API server and worker: ZeroMQ (fast_queue=True, its "
        "advice above 100 req/s) or multiprocessing queues (its default)",
    )
    args = parser.parse_args(argv)
    if args.max_batch_size < 1 or args.batch_timeout_ms < 0 or args.torch_threads < 1:
        parser.error("need --max-batch-size >= 1, --batch-timeout-ms >= 0, --torch-threads >= 1")
    api = TorchScriptAPI(
        args.model_dir, args.torch_threads, args.max_batch_size, args.batch_timeout_ms
    )
    server = ls.LitServer(
        api,
        accelerator="cpu",
        devices=1,
        workers_per_device=1,
        fast_queue=args.queue == "zmq",
    )
    server.run(host="127.0.0.1", port=args.port, num_api_servers=1, generate_client_file=False)


if __name__ == "__main__":
    main()
