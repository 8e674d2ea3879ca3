"""The ``digits`` handler's request and response logic, free of torch.

Packed into each TorchServe archive beside ``digits_handler.py`` (which imports it), so it runs on
the official image's interpreter: ``pytorch/torchserve:0.12.0`` is Python 3.9 with numpy 1.24.
Nothing here may need a newer Python, and nothing may import torch: the tests run this module
under CPython 3.9 with TorchServe's own envelope, where torch cannot be installed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
from ts.torch_handler.request_envelope.kservev2 import KServev2Envelope, _to_datatype
from ts.utils.util import PredictionException

INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"
DATATYPE = "FP32"
NUM_FEATURES = 64
NUM_CLASSES = 10
PLATFORM = "pytorch_torchscript"

BAD_REQUEST = 400

# One output of the handler's ``postprocess``: its name and its values in their real shape.
NamedOutput = tuple[str, np.ndarray[Any, Any]]


class DigitsEnvelope(KServev2Envelope):  # type: ignore[misc]
    """TorchServe's KServe v2 envelope, with validated inputs and outputs that keep their own
    names and shapes."""

    def parse_input(self, data: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        if len(data) != 1:
            raise PredictionException(
                f"the digits handler takes one request per batch, got {len(data)}; "
                "register the model with batch_size 1",
                500,
            )
        # Left behind by a request that failed after parsing, they would leak into this one.
        for stale in ("input_names", "input_request_id"):
            if hasattr(self.context, stale):
                delattr(self.context, stale)
        row = data[0]
        # REST puts the body under "body", gRPC under the input map's key, here "data".
        raw = next((row[key] for key in ("data", "body") if row.get(key) is not None), None)
        if raw is None:
            raise bad_request(
                "no request body: send the infer request as JSON "
                "(REST: Content-Type application/json; gRPC: input {'data': <JSON bytes>})"
            )
        body = decode_body(raw)
        validate_request(body)
        parsed: list[dict[str, Any]] = super().parse_input([{"body": body}])
        return parsed

    def format_output(self, data: Sequence[NamedOutput]) -> list[bytes]:
        responses: list[dict[str, Any]] = super().format_output(data)
        for index in range(len(responses)):
            self.context.set_response_content_type(index, "application/json")
        return [json.dumps(response, separators=(",", ":")).encode() for response in responses]

    def _batch_to_json(self, data: Sequence[NamedOutput]) -> list[dict[str, Any]]:
        # The base class pairs output i with input i's name; here each output names itself.
        if hasattr(self.context, "input_names"):
            delattr(self.context, "input_names")
        return [output_json(name, values) for name, values in data]


def bad_request(message: str) -> PredictionException:
    return PredictionException(message, BAD_REQUEST)


def decode_body(body: Any) -> Any:
    """REST JSON bodies arrive decoded; gRPC ``input["data"]`` and other bodies arrive as bytes."""
    if isinstance(body, (bytes, bytearray)):
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError as error:
            raise bad_request(f"request body is not UTF-8: {error}") from error
    if isinstance(body, str):
        try:
            return json.loads(body)
        except json.JSONDecodeError as error:
            raise bad_request(f"request body is not JSON: {error}") from error
    return body


def validate_request(body: Any) -> None:
    if not isinstance(body, dict):
        raise bad_request("request body must be a JSON object with an 'inputs' list")
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise bad_request("'id' must be a string")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise bad_request(f"'inputs' must list exactly one tensor, named '{INPUT_NAME}'")
    tensor = inputs[0]
    name, datatype, shape = tensor.get("name"), tensor.get("datatype"), tensor.get("shape")
    if name != INPUT_NAME:
        raise bad_request(f"unknown input {name!r}; the model takes '{INPUT_NAME}'")
    if datatype != DATATYPE:
        raise bad_request(f"input '{INPUT_NAME}' must be {DATATYPE}, got {datatype!r}")
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or not all(isinstance(dim, int) and not isinstance(dim, bool) for dim in shape)
        or shape[0] < 1
        or shape[1] != NUM_FEATURES
    ):
        raise bad_request(
            f"input '{INPUT_NAME}' must have shape [N, {NUM_FEATURES}] with N >= 1, got {shape!r}"
        )
    data = tensor.get("data")
    if not isinstance(data, list):
        raise bad_request(f"input '{INPUT_NAME}' needs a 'data' list")
    try:
        values = np.asarray(data)
    except ValueError as error:
        raise bad_request(f"input '{INPUT_NAME}' data is ragged: {error}") from error
    if values.size and values.dtype.kind not in "iuf":
        raise bad_request(f"input '{INPUT_NAME}' data must be numbers")
    if values.size != shape[0] * shape[1]:
        raise bad_request(
            f"input '{INPUT_NAME}' has {values.size} values but shape {shape} needs "
            f"{shape[0] * shape[1]}"
        )
    outputs = body.get("outputs")
    if outputs is not None and (
        not isinstance(outputs, list)
        or any(not isinstance(out, dict) or out.get("name") != OUTPUT_NAME for out in outputs)
    ):
        raise bad_request(f"the only output is '{OUTPUT_NAME}'")


def output_json(name: str, values: np.ndarray[Any, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "datatype": _to_datatype(values.dtype),
        "shape": [int(dim) for dim in values.shape],
        "data": values.ravel().tolist(),
    }


def describe(manifest: dict[str, Any] | None) -> str:
    """The model's Open Inference Protocol metadata, as TorchServe's ``customizedMetadata``."""
    model = manifest["model"] if manifest else {}
    metadata = {
        "name": model.get("modelName", "digits"),
        "versions": [model["modelVersion"]] if "modelVersion" in model else [],
        "platform": PLATFORM,
        "inputs": [{"name": INPUT_NAME, "datatype": DATATYPE, "shape": [-1, NUM_FEATURES]}],
        "outputs": [{"name": OUTPUT_NAME, "datatype": DATATYPE, "shape": [-1, NUM_CLASSES]}],
    }
    return json.dumps(metadata, separators=(",", ":"))
