"""TorchServe's gRPC ``PredictionsRequest``: retargeting, and its REST-body equivalent.

TorchServe hands a handler the REST body and the gRPC ``input`` map alike (as ``row["body"]`` /
``row["data"]``), so a one-entry map and a REST body carry the same thing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from gateway.codecs import oip_json, tfserving_json
from gateway.errors import InvalidInput, UnsupportedMediaType
from gateway.inference import InferRequest, ModelMetadata, Tensor
from gateway.wire import torchserve_pb2 as ts

NEEDS_TENSORS = (
    "this model version runs on TF Serving, which needs tensors: send Open Inference Protocol "
    'JSON ({"inputs": [{"name", "datatype", "shape", "data"}]}) or TF Serving JSON '
    '({"instances": [...]} or {"inputs": ...})'
)


def parse_predictions_request(body: bytes) -> ts.PredictionsRequest:
    try:
        return ts.PredictionsRequest.FromString(body)
    except Exception as error:  # protobuf's DecodeError
        raise InvalidInput(f"not a valid PredictionsRequest: {error}") from None


def retarget_predictions_request(body: bytes, name: str, version: str) -> bytes:
    message = parse_predictions_request(body)
    message.model_name = name
    message.model_version = version
    return message.SerializeToString()


def single_body(body: bytes) -> bytes:
    """The one value of a request's ``input`` map, as a REST body."""
    inputs = parse_predictions_request(body).input
    if len(inputs) != 1:
        raise InvalidInput(
            f"a TorchServe REST backend takes one body; this request's input map has "
            f"{len(inputs)} entries ({', '.join(sorted(inputs))})"
        )
    return next(iter(inputs.values()))


def _body_kind(doc: Any) -> str | None:
    """``oip`` for an Open Inference Protocol request, ``tfs`` for a TF Serving one."""
    if not isinstance(doc, dict):
        return None
    inputs = doc.get("inputs")
    # TF Serving's columnar "inputs" holds values (or b64 objects), never tensor descriptions.
    if (
        isinstance(inputs, list)
        and inputs
        and all(isinstance(item, dict) and "datatype" in item for item in inputs)
    ):
        return "oip"
    return "tfs" if "instances" in doc or "inputs" in doc else None


async def body_tensors(
    body: bytes,
    request: InferRequest,
    metadata: Callable[[], Awaitable[ModelMetadata]],
) -> list[Tensor]:
    """The tensors in a TorchServe-shaped body, for a variant that is not TorchServe.

    TorchServe bodies declare no format: OIP JSON (what kservev2 handlers read) and TF Serving
    JSON are recognized; anything else cannot reach a TF Serving variant.
    """
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UnsupportedMediaType(NEEDS_TENSORS) from None
    kind = _body_kind(doc)
    if kind == "oip":
        return oip_json.decode_request(body, None, request.model, request.version).inputs or []
    if kind == "tfs":
        decoded = tfserving_json.decode_predict_request(body, await metadata())
        if decoded.signature_name:
            request.parameters["signature_name"] = decoded.signature_name
        return decoded.inputs
    raise InvalidInput(NEEDS_TENSORS)
