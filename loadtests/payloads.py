"""Digits to send and the gateway's REST bodies: what each way in sends and how to read its answer.

Pure functions over numpy arrays (no Locust): a request body from a batch of rows ``[N, 64]``,
and the probabilities ``[N, 10]`` (and the model version, where the protocol names it) from an
answer. A malformed answer raises ``ValueError``,
``KeyError`` or ``TypeError``, which the users report as a failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from model_store.digits import (
    INPUT_NAME,
    NUM_CLASSES,
    OUTPUT_NAME,
    DigitsSet,
    FloatArray,
    IntArray,
)

BINARY_HEADER = "inference-header-content-length"


@dataclass(frozen=True)
class Sample:
    """A batch of test digits, their labels, and where they sit in the test set."""

    rows: FloatArray
    labels: IntArray
    indices: IntArray  # rows of the test split (and of each version's reference outputs)


def draw(digits: DigitsSet, rng: np.random.Generator, batch_size: int) -> Sample:
    """``batch_size`` digits picked at random (with replacement) from the test set."""
    picks = rng.integers(0, len(digits), size=batch_size)
    return Sample(digits.inputs[picks], digits.labels[picks], picks)


def _input_doc(rows: FloatArray) -> dict[str, Any]:
    return {"name": INPUT_NAME, "datatype": "FP32", "shape": list(rows.shape)}


def oip_json_body(rows: FloatArray) -> bytes:
    """Open Inference Protocol JSON: ``{"inputs": [{..., "data": [...]}]}``."""
    tensor = {**_input_doc(rows), "data": rows.ravel()}
    return orjson.dumps({"inputs": [tensor]}, option=orjson.OPT_SERIALIZE_NUMPY)


def oip_binary_body(rows: FloatArray) -> tuple[bytes, int]:
    """The binary tensor extension: a JSON header, then the raw FP32 bytes; also the JSON length.

    The output is asked for in binary too, so both directions skip JSON numbers.
    """
    raw = rows.astype("<f4", copy=False).tobytes()
    header = orjson.dumps(
        {
            "inputs": [{**_input_doc(rows), "parameters": {"binary_data_size": len(raw)}}],
            "outputs": [{"name": OUTPUT_NAME, "parameters": {"binary_data": True}}],
        }
    )
    return header + raw, len(header)


def tfs_rest_body(rows: FloatArray) -> bytes:
    """TF Serving's row format: ``{"instances": [[64 pixels], ...]}``."""
    return orjson.dumps({"instances": rows}, option=orjson.OPT_SERIALIZE_NUMPY)


def oip_answer(body: bytes, header_length: int | None = None) -> tuple[FloatArray, str | None]:
    """``probabilities`` and the version named (``model_version``) of an OIP answer: JSON, or
    a JSON header of ``header_length`` bytes and binary outputs (TorchServe's kservev2 too)."""
    doc = orjson.loads(body if header_length is None else body[:header_length])
    version = doc.get("model_version")
    offset = header_length or 0
    for output in doc["outputs"]:
        size = output.get("parameters", {}).get("binary_data_size")
        if output["name"] == OUTPUT_NAME:
            if size is None:
                data = np.asarray(output["data"], dtype=np.float32)
            else:
                data = np.frombuffer(body, dtype="<f4", count=size // 4, offset=offset)
            return as_probabilities(data, output["shape"]), str(version) if version else None
        offset += size or 0
    raise KeyError(f"no output {OUTPUT_NAME!r} in the answer")


def tfs_rest_answer(body: bytes) -> tuple[FloatArray, str | None]:
    """``{"predictions": [[10 probabilities], ...]}`` (one output, so no names; no version)."""
    predictions = np.asarray(orjson.loads(body)["predictions"], dtype=np.float32)
    return as_probabilities(predictions, list(predictions.shape)), None


def as_probabilities(data: FloatArray, shape: list[int]) -> FloatArray:
    if len(shape) != 2 or shape[1] != NUM_CLASSES:
        raise ValueError(f"probabilities should be [N, {NUM_CLASSES}], got {shape}")
    return data.reshape(shape)
