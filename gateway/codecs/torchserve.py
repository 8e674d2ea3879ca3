"""TorchServe's gRPC ``PredictionsRequest``: retargeting, and its REST-body equivalent.

TorchServe hands a handler the REST body and the gRPC ``input`` map alike (as ``row["body"]`` /
``row["data"]``), so a one-entry map and a REST body carry the same thing.
"""

from __future__ import annotations

from gateway.errors import InvalidInput
from gateway.wire import torchserve_pb2 as ts


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
