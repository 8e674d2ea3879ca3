"""TF Serving gRPC messages <-> tensors, and retargeting messages that are forwarded verbatim.

Retargeting parses a "view" of the message (``gateway/wire/passthrough.proto``) whose tensors
stay undecoded bytes, rewrites the model_spec, and serializes it again.
"""

from __future__ import annotations

from gateway.codecs.tfserving_tensor import from_tensor_proto, to_tensor_proto
from gateway.errors import InvalidInput
from gateway.inference import Tensor
from gateway.wire import passthrough_pb2 as views
from gateway.wire import tensorflow_serving_pb2 as tfs

DEFAULT_SIGNATURE = "serving_default"

_View = views.PredictResponseView | views.InputRequestView | views.ResultResponseView


def set_model_spec(spec: tfs.ModelSpec, name: str, version: int, signature: str | None) -> None:
    spec.name = name
    spec.version.value = version  # also clears a version_label (same oneof)
    if signature is not None:
        spec.signature_name = signature


def predict_request_from_tensors(
    inputs: list[Tensor], output_filter: list[str], name: str, version: int, signature: str
) -> tfs.PredictRequest:
    message = tfs.PredictRequest(output_filter=output_filter)
    set_model_spec(message.model_spec, name, version, signature)
    for tensor in inputs:
        to_tensor_proto(tensor, message.inputs[tensor.name])
    return message


def predict_request_tensors(message: tfs.PredictRequest) -> list[Tensor]:
    return [from_tensor_proto(key, message.inputs[key]) for key in sorted(message.inputs)]


def predict_response_tensors(body: bytes) -> list[Tensor]:
    reply = tfs.PredictResponse.FromString(body)
    return [from_tensor_proto(key, reply.outputs[key]) for key in sorted(reply.outputs)]


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
    except Exception as error:  # protobuf raises DecodeError, an Exception subclass
        raise InvalidInput(f"not a valid PredictRequest: {error}") from None


def _retarget(
    view_type: type[_View], body: bytes, name: str, version: int, signature: str | None
) -> bytes:
    view = view_type.FromString(body)
    set_model_spec(view.model_spec, name, version, signature)
    return view.SerializeToString()


def retarget_predict_request(body: bytes, name: str, version: int) -> bytes:
    view = parse_predict_view(body)  # a malformed request is the client's error, named as such
    set_model_spec(view.model_spec, name, version, None)
    return view.SerializeToString()


def retarget_predict_response(body: bytes, name: str, version: int, signature: str) -> bytes:
    return _retarget(views.PredictResponseView, body, name, version, signature)


def retarget_input_request(body: bytes, name: str, version: int) -> bytes:
    return _retarget(views.InputRequestView, body, name, version, None)


def retarget_result_response(body: bytes, name: str, version: int, signature: str) -> bytes:
    return _retarget(views.ResultResponseView, body, name, version, signature)
