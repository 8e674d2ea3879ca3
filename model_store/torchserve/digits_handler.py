"""TorchServe handler for the ``digits`` TorchScript model, speaking Open Inference Protocol JSON.

TorchServe loads this file from the model archive (it is not imported by the gateway). A request
body, over REST (``POST /predictions/digits/<version>``) or gRPC (``Predictions`` with
``input={"data": <body>}``), is an Open Inference Protocol (KServe v2) infer request::

    {"id": "r1", "inputs": [{"name": "input", "datatype": "FP32", "shape": [N, 64],
                             "data": [...N*64 numbers, flat or nested...]}]}

and the response is the matching infer response::

    {"id": "r1", "model_name": "digits", "model_version": "1",
     "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [N, 10],
                  "data": [...N*10 floats, row-major...]}]}

The translation uses TorchServe's own KServe v2 envelope for this model only (no server-wide
``service_envelope``), with two fixes: that envelope names output *i* after input *i* and
flattens every output's shape to one dimension, while here each output keeps its own name and
shape. Malformed requests fail with status 400 and a message saying what is wrong.

``GET /models/digits/<version>?customized=true`` on the management API returns, as
``customizedMetadata``, the model's Open Inference Protocol metadata as a JSON string.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from ts.torch_handler.base_handler import BaseHandler
from ts.torch_handler.request_envelope.kservev2 import KServev2Envelope, _to_datatype
from ts.utils.util import PredictionException

logger = logging.getLogger(__name__)

INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"
DATATYPE = "FP32"
NUM_FEATURES = 64
NUM_CLASSES = 10
PLATFORM = "pytorch_torchscript"

BAD_REQUEST = 400

# One output of ``postprocess``: its name and its values in their real shape.
NamedOutput = tuple[str, np.ndarray[Any, Any]]


class DigitsHandler(BaseHandler):  # type: ignore[misc]
    """Runs the TorchScript model on one OIP request at a time (the model's batch size is 1)."""

    # TorchServe instantiates the one class defined at the top level of a handler module, so the
    # envelope lives inside the handler class rather than beside it.
    class Envelope(KServev2Envelope):  # type: ignore[misc]
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
                raise _bad_request(
                    "no request body: send the infer request as JSON "
                    "(REST: Content-Type application/json; gRPC: input {'data': <JSON bytes>})"
                )
            body = _decode_body(raw)
            _validate_request(body)
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
            return [_output_json(name, values) for name, values in data]

    def __init__(self) -> None:
        super().__init__()
        self._envelope: DigitsHandler.Envelope | None = None

    def initialize(self, context: Any) -> None:
        super().initialize(context)
        # The envelope wraps BaseHandler.handle: preprocess -> inference -> postprocess, timed.
        predict: Callable[[Any, Any], Any] = super().handle
        self._envelope = DigitsHandler.Envelope(predict)

    def handle(self, data: list[dict[str, Any]], context: Any) -> list[Any]:
        self.context = context
        if self._is_describe():
            # A describe request has no OIP body, so it must not reach the envelope.
            return [self.describe_handle()]
        if self._envelope is None:
            raise PredictionException("the digits handler is not initialized", 503)
        result: list[Any] = self._envelope.handle(data, context)
        return result

    def preprocess(self, data: list[dict[str, Any]]) -> torch.Tensor:
        # The envelope has validated the request and reshaped "data" to [N, 64] nested lists.
        values = np.asarray(data[0]["data"], dtype=np.float32).reshape(-1, NUM_FEATURES)
        return torch.from_numpy(values).to(self.device)

    def postprocess(self, data: torch.Tensor) -> list[NamedOutput]:
        probabilities = data.detach().to("cpu").numpy().astype(np.float32, copy=False)
        return [(OUTPUT_NAME, probabilities)]

    def describe_handle(self) -> str:
        model = self.manifest["model"] if self.manifest else {}
        metadata = {
            "name": model.get("modelName", "digits"),
            "versions": [model["modelVersion"]] if "modelVersion" in model else [],
            "platform": PLATFORM,
            "inputs": [{"name": INPUT_NAME, "datatype": DATATYPE, "shape": [-1, NUM_FEATURES]}],
            "outputs": [{"name": OUTPUT_NAME, "datatype": DATATYPE, "shape": [-1, NUM_CLASSES]}],
        }
        return json.dumps(metadata, separators=(",", ":"))


def _bad_request(message: str) -> PredictionException:
    return PredictionException(message, BAD_REQUEST)


def _decode_body(body: Any) -> Any:
    """REST JSON bodies arrive decoded; gRPC ``input["data"]`` and other bodies arrive as bytes."""
    if isinstance(body, bytes | bytearray):
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError as error:
            raise _bad_request(f"request body is not UTF-8: {error}") from error
    if isinstance(body, str):
        try:
            return json.loads(body)
        except json.JSONDecodeError as error:
            raise _bad_request(f"request body is not JSON: {error}") from error
    return body


def _validate_request(body: Any) -> None:
    if not isinstance(body, dict):
        raise _bad_request("request body must be a JSON object with an 'inputs' list")
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise _bad_request("'id' must be a string")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise _bad_request(f"'inputs' must list exactly one tensor, named '{INPUT_NAME}'")
    tensor = inputs[0]
    name, datatype, shape = tensor.get("name"), tensor.get("datatype"), tensor.get("shape")
    if name != INPUT_NAME:
        raise _bad_request(f"unknown input {name!r}; the model takes '{INPUT_NAME}'")
    if datatype != DATATYPE:
        raise _bad_request(f"input '{INPUT_NAME}' must be {DATATYPE}, got {datatype!r}")
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or not all(isinstance(dim, int) and not isinstance(dim, bool) for dim in shape)
        or shape[0] < 1
        or shape[1] != NUM_FEATURES
    ):
        raise _bad_request(
            f"input '{INPUT_NAME}' must have shape [N, {NUM_FEATURES}] with N >= 1, got {shape!r}"
        )
    data = tensor.get("data")
    if not isinstance(data, list):
        raise _bad_request(f"input '{INPUT_NAME}' needs a 'data' list")
    try:
        values = np.asarray(data)
    except ValueError as error:
        raise _bad_request(f"input '{INPUT_NAME}' data is ragged: {error}") from error
    if values.size and values.dtype.kind not in "iuf":
        raise _bad_request(f"input '{INPUT_NAME}' data must be numbers")
    if values.size != shape[0] * shape[1]:
        raise _bad_request(
            f"input '{INPUT_NAME}' has {values.size} values but shape {shape} needs "
            f"{shape[0] * shape[1]}"
        )
    outputs = body.get("outputs")
    if outputs is not None and (
        not isinstance(outputs, list)
        or any(not isinstance(out, dict) or out.get("name") != OUTPUT_NAME for out in outputs)
    ):
        raise _bad_request(f"the only output is '{OUTPUT_NAME}'")


def _output_json(name: str, values: np.ndarray[Any, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "datatype": _to_datatype(values.dtype),
        "shape": [int(dim) for dim in values.shape],
        "data": values.ravel().tolist(),
    }
