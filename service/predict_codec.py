"""The simple ``/predict`` format for people and curl: rows in, labelled predictions out.

Request: ``{"instances": [row, ...]}`` where a row is the model's one input for one example (for
the digits model, 64 pixel values), or, for a model with several inputs, an object mapping each
input name to its row. Response: one prediction per row holding every output's row, plus
``label`` (the name of the highest-scoring class) when the model declares labels.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from service.errors import BadRequestError
from service.signature import ModelSignature
from service.v2_codec import array_from_json, check_tensor


def decode_predict_request(document: object, signature: ModelSignature) -> dict[str, np.ndarray]:
    """Turn a parsed ``/predict`` body into one batch array per model input."""
    if not isinstance(document, dict) or "instances" not in document:
        raise BadRequestError('the body must be a JSON object {"instances": [row, ...]}')
    instances = document["instances"]
    if not isinstance(instances, list) or not instances:
        raise BadRequestError("instances must be a non-empty array of rows (an empty batch)")
    names = [spec.name for spec in signature.inputs]
    if all(isinstance(row, dict) for row in instances):
        columns: dict[str, list[Any]] = {name: [] for name in names}
        for index, row in enumerate(instances):
            if sorted(row) != sorted(names):
                raise BadRequestError(
                    f"instances[{index}] has keys {sorted(row)!r:.200}; the model's inputs are "
                    f"{sorted(names)}"
                )
            for name in names:
                columns[name].append(row[name])
    elif len(names) == 1:
        columns = {names[0]: instances}
    else:
        raise BadRequestError(
            f"the model has several inputs {names}; send each row as an object keyed by input name"
        )
    arrays: dict[str, np.ndarray] = {}
    for spec in signature.inputs:
        where = f"input {spec.name!r} of instances"
        array = array_from_json(columns[spec.name], spec.datatype, where)
        check_tensor(array, spec, where)
        arrays[spec.name] = array
    return arrays


def encode_predictions(
    outputs: Mapping[str, np.ndarray], signature: ModelSignature
) -> list[dict[str, Any]]:
    """One prediction per row: each output's row as a list, and ``label`` for labelled models."""
    rows = next(iter(outputs.values())).shape[0]
    per_output = {spec.name: np.asarray(outputs[spec.name]).tolist() for spec in signature.outputs}
    predictions: list[dict[str, Any]] = [
        {name: values[row] for name, values in per_output.items()} for row in range(rows)
    ]
    if signature.labels is not None:
        # Labels name the classes of the first output (the signature checks the sizes agree).
        scores = np.asarray(outputs[signature.outputs[0].name]).reshape(rows, -1)
        for prediction, best in zip(predictions, scores.argmax(axis=1).tolist(), strict=True):
            prediction["label"] = signature.labels[best]
    return predictions
