"""TF Serving gRPC messages <-> tensors, and retargeting messages that are forwarded verbatim.

Retargeting parses a "view" of the message (``gateway/wire/passthrough.proto``) whose tensors
stay undecoded bytes, rewrites the model_spec, and serializes it again.
"""

from __future__ import annotations

from google.protobuf.message import DecodeError

from gateway.codecs.limits import Budget
from gateway.codecs.tfserving_tensor import from_tensor_proto, to_tensor_proto
from gateway.codecs.upstream_limit import BodyBudget
from gateway.errors import BackendError, InvalidInput
from gateway.inference import Tensor
from gateway.wire import passthrough_pb2 as views
from gateway.wire import tensorflow_serving_pb2 as tfs

_ReplyView = views.PredictResponseView | views.ResultResponseView


def set_model_spec(spec: tfs.ModelSpec, name: str, version: int, signature: str | None) -> None:
    spec.name = name
    spec.version.value = version  # also clears a version_label (same oneof)
    if signature is not None:
        spec.signature_name = signature


def predict_request_from_tensors(
    inputs: list[Tensor],
    output_filter: list[str],
    name: str,
    version: int,
    signature: str,
    limit: int,
) -> tfs.PredictRequest:
    """A PredictRequest for a backend, refused (PayloadTooLarge) past ``limit`` bytes."""
    budget = BodyBudget(limit, "the request as a PredictRequest for the backend")
    for tensor in inputs:
        budget.spend_raw(tensor, 2)  # a string_val's tag and length
    message = tfs.PredictRequest(output_filter=output_filter)
    set_model_spec(message.model_spec, name, version, signature)
    for tensor in inputs:
        to_tensor_proto(tensor, message.inputs[tensor.name])
    budget.check(message.ByteSize())
    return message


def predict_request_tensors(message: tfs.PredictRequest, limit: int) -> list[Tensor]:
    """A client's tensors; their decoded size (after broadcasts) may not exceed ``limit``."""
    budget = Budget(limit)
    inputs = message.inputs
    return [from_tensor_proto(key, inputs[key], budget, "input") for key in sorted(inputs)]


def predict_response_tensors(body: bytes, limit: int) -> list[Tensor]:
    """A backend's PredictResponse; InvalidInput if unreadable (the backend makes it a 502)."""
    try:
        reply = tfs.PredictResponse.FromString(body)
    except DecodeError as error:
        raise InvalidInput(f"not a valid PredictResponse: {error}") from None
    budget = Budget(limit)
    outputs = reply.outputs
    return [from_tensor_proto(key, outputs[key], budget, "output") for key in sorted(outputs)]


def predict_response_from_tensors(
    outputs: list[Tensor], name: str, version: int, signature: str
) -> tfs.PredictResponse:
    message = tfs.PredictResponse()
    set_model_spec(message.model_spec, name, version, signature)
    for tensor in outputs:
        to_tensor_proto(tensor, message.outputs[tensor.name])
    return message


def parse_predict_view(body: bytes) -> views.PredictRequestView:
    try:
        return views.PredictRequestView.FromString(body)
    except DecodeError as error:
        raise InvalidInput(f"not a valid PredictRequest: {error}") from None


def _retarget(
    view_type: type[_ReplyView], body: bytes, name: str, version: int, signature: str | None
) -> bytes:
    """A backend's reply under the public model_spec; BackendError if it is unreadable."""
    try:
        view = view_type.FromString(body)
    except DecodeError as error:
        what = view_type.DESCRIPTOR.name.removesuffix("View")
        raise BackendError(f"the backend's reply is not a valid {what}: {error}") from None
    set_model_spec(view.model_spec, name, version, signature)
    return view.SerializeToString()


def retarget_predict_request(body: bytes, name: str, version: int) -> bytes:
    view = parse_predict_view(body)  # a malformed request is the client's error, named as such
    set_model_spec(view.model_spec, name, version, None)
    return view.SerializeToString()


def retarget_predict_response(body: bytes, name: str, version: int, signature: str) -> bytes:
    return _retarget(views.PredictResponseView, body, name, version, signature)


def retarget_input_request(body: bytes, name: str, version: int) -> bytes:
    try:
        view = views.InputRequestView.FromString(body)
    except DecodeError as error:
        raise InvalidInput(f"not a valid Classify/Regress request: {error}") from None
    set_model_spec(view.model_spec, name, version, None)
    return view.SerializeToString()


def retarget_result_response(body: bytes, name: str, version: int, signature: str) -> bytes:
    return _retarget(views.ResultResponseView, body, name, version, signature)
