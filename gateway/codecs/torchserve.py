"""TorchServe's gRPC ``PredictionsRequest``: retargeting, and its REST-body equivalent; and the
tensors in a TorchServe body, for a variant that is not TorchServe.

TorchServe hands a handler the REST body and the gRPC ``input`` map alike (as ``row["body"]`` /
``row["data"]``), so a one-entry map and a REST body carry the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from google.protobuf.message import DecodeError

from gateway.codecs import oip_json, tfserving_json
from gateway.errors import InvalidInput, UnsupportedMediaType
from gateway.inference import ModelMetadata, Parameters, Tensor
from gateway.wire import torchserve_pb2 as ts

NEEDS_TENSORS = (
    "this model version runs on TF Serving, which needs tensors: send Open Inference Protocol "
    'JSON ({"inputs": [{"name", "datatype", "shape", "data"}]}) or TF Serving JSON '
    '({"instances": [...]} or {"inputs": ...})'
)


def parse_predictions_request(body: bytes) -> ts.PredictionsRequest:
    try:
        return ts.PredictionsRequest.FromString(body)
    except DecodeError as error:
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


@dataclass(slots=True, frozen=True)
class TensorBody:
    """A TorchServe body that holds tensors: Open Inference Protocol JSON (what kservev2
    handlers read) or TF Serving JSON, which needs the model's metadata to be typed."""

    doc: dict[str, Any]
    needs_metadata: bool
    """TF Serving JSON: typed by the routed variant's metadata."""


def tensor_body(body: bytes) -> TensorBody:
    """Recognize a TorchServe body's format; TorchServe bodies declare none, and anything else
    cannot reach a TF Serving variant (415 for what is not JSON, 400 for other JSON)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UnsupportedMediaType(NEEDS_TENSORS) from None
    if not isinstance(doc, dict):
        raise InvalidInput(NEEDS_TENSORS)
    inputs = doc.get("inputs")
    # TF Serving's columnar "inputs" holds values (or b64 objects), never tensor descriptions.
    if (
        isinstance(inputs, list)
        and inputs
        and all(isinstance(item, dict) and "datatype" in item for item in inputs)
    ):
        return TensorBody(doc, needs_metadata=False)
    if "instances" in doc or "inputs" in doc:
        return TensorBody(doc, needs_metadata=True)
    raise InvalidInput(NEEDS_TENSORS)


def body_tensors(
    body: TensorBody, metadata: ModelMetadata | None, limit: int
) -> tuple[list[Tensor], Parameters]:
    """The tensors of a recognized body, and the request parameters it sets (a TF Serving
    ``signature_name``); ``metadata`` is the routed variant's, needed when
    ``body.needs_metadata``."""
    if not body.needs_metadata:
        return oip_json.decode_inputs(body.doc, limit), {}
    if metadata is None:
        raise ValueError("TF Serving JSON is typed by the model's metadata")
    decoded = tfserving_json.decode_predict_request(body.doc, metadata, limit)
    signature = decoded.signature_name
    return decoded.inputs, {} if signature is None else {"signature_name": signature}
