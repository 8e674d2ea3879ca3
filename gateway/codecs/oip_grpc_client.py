"""The gateway as a client of an Open Inference Protocol gRPC server (Triton, MLServer, ...).

Requests built from tensors send every input raw (``raw_input_contents``); a client's own
ModelInferRequest is forwarded with only its model name and version rewritten, through a view
whose tensors stay undecoded bytes (``gateway/wire/passthrough.proto``), and the server's reply is
renamed the same way. Replies are decoded into tensors only when the client speaks another
protocol.
"""

from __future__ import annotations

from google.protobuf.message import DecodeError

from gateway.codecs.limits import Budget, checked_shape
from gateway.codecs.oip_grpc import fill_parameters, typed_data
from gateway.codecs.oip_raw import tensor_bytes, tensor_data
from gateway.codecs.upstream_limit import BodyBudget
from gateway.errors import InvalidInput
from gateway.inference import DATATYPES, InferRequest, Tensor
from gateway.wire import oip_pb2 as oip
from gateway.wire import passthrough_pb2 as views


def infer_request(
    request: InferRequest, inputs: list[Tensor], name: str, version: str, limit: int
) -> bytes:
    """A serialized ModelInferRequest for ``name``/``version``, every input raw; refused
    (PayloadTooLarge) past ``limit`` bytes."""
    budget = BodyBudget(limit, "the request as a ModelInferRequest for the backend")
    message = oip.ModelInferRequest(model_name=name, model_version=version, id=request.id or "")
    fill_parameters(message.parameters, request.parameters)
    for tensor in inputs:
        budget.spend_raw(tensor, 4)
        entry = message.inputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
        fill_parameters(entry.parameters, tensor.parameters or {})
        message.raw_input_contents.append(tensor_bytes(tensor))
    for wanted in request.outputs:
        message.outputs.add(name=wanted.name)
    return budget.finish(message.SerializeToString())


def retarget_infer_request(body: bytes, name: str, version: str) -> bytes:
    """A client's ModelInferRequest, aimed at the backend's model name and version."""
    return _renamed(views.ModelInferRequestView, body, name, version)


def rename_infer_response(body: bytes, name: str, version: str) -> bytes:
    """A server's ModelInferResponse under the public model name and version, tensors untouched.

    InvalidInput if it is not one; the caller makes that the backend's fault.
    """
    return _renamed(views.ModelInferResponseView, body, name, version)


_View = views.ModelInferRequestView | views.ModelInferResponseView


def _renamed(view_type: type[_View], body: bytes, name: str, version: str) -> bytes:
    try:
        view = view_type.FromString(body)
    except DecodeError as error:
        what = view_type.DESCRIPTOR.name.removesuffix("View")
        raise InvalidInput(f"not a valid {what}: {error}") from None
    view.model_name = name
    view.model_version = version
    return view.SerializeToString()


def infer_response_tensors(body: bytes, limit: int) -> list[Tensor]:
    """The outputs of a serialized ModelInferResponse, raw or typed, decoded within ``limit``
    bytes; InvalidInput if unreadable."""
    try:
        reply = oip.ModelInferResponse.FromString(body)
    except DecodeError as error:
        raise InvalidInput(f"not a valid ModelInferResponse: {error}") from None
    raw = reply.raw_output_contents
    if raw and len(raw) != len(reply.outputs):
        raise InvalidInput(
            f"raw_output_contents has {len(raw)} entries for {len(reply.outputs)} outputs"
        )
    budget = Budget(limit)
    tensors = []
    for index, item in enumerate(reply.outputs):
        where = f"output {item.name!r}"
        if item.datatype not in DATATYPES:
            raise InvalidInput(f"{where}: unknown datatype {item.datatype!r}")
        shape = checked_shape(where, item.shape)
        count = budget.charge(where, shape, item.datatype)
        if raw:
            data = tensor_data(raw[index], item.datatype, shape, where, "raw output content")
        else:
            data = typed_data(item.contents, item.datatype, shape, count, where)
        tensors.append(Tensor(item.name, item.datatype, data))
    return tensors
