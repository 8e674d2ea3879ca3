"""TorchServe's gRPC ``Predictions`` messages, built at run time in a private descriptor pool.

The messages mirror TorchServe's published ``inference.proto`` (package
``org.pytorch.serve.grpc.inference``), field for field, except ``PredictionResponse.status``
(a ``google.rpc.Status``, set only by ``StreamPredictions2``), which is left out: a parser keeps
it as an unknown field. They live in their own ``DescriptorPool`` rather than the default one, so
they cannot clash with any generated ``_pb2`` module that registers the same names.

Call the service with a generic stub::

    predictions = predictions_stub(channel)
    reply = predictions(PredictionsRequest(model_name="digits", model_version="1",
                                           input={"data": body}))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

PACKAGE = "org.pytorch.serve.grpc.inference"
SERVICE = "InferenceAPIsService"

_Field = descriptor_pb2.FieldDescriptorProto


def _file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto(
        name="tests/support/torchserve_inference.proto", package=PACKAGE, syntax="proto3"
    )

    request = proto.message_type.add(name="PredictionsRequest")
    request.field.add(
        name="model_name", number=1, type=_Field.TYPE_STRING, label=_Field.LABEL_OPTIONAL
    )
    request.field.add(
        name="model_version", number=2, type=_Field.TYPE_STRING, label=_Field.LABEL_OPTIONAL
    )
    # map<string, bytes> input = 3: a repeated nested entry message marked as a map entry.
    entry = request.nested_type.add(name="InputEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=_Field.TYPE_STRING, label=_Field.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=_Field.TYPE_BYTES, label=_Field.LABEL_OPTIONAL)
    request.field.add(
        name="input",
        number=3,
        type=_Field.TYPE_MESSAGE,
        label=_Field.LABEL_REPEATED,
        type_name=f".{PACKAGE}.PredictionsRequest.InputEntry",
    )
    _add_proto3_optional_string(request, name="sequence_id", number=4)

    response = proto.message_type.add(name="PredictionResponse")
    response.field.add(
        name="prediction", number=1, type=_Field.TYPE_BYTES, label=_Field.LABEL_OPTIONAL
    )
    _add_proto3_optional_string(response, name="sequence_id", number=2)

    service = proto.service.add(name=SERVICE)
    service.method.add(
        name="Predictions",
        input_type=f".{PACKAGE}.PredictionsRequest",
        output_type=f".{PACKAGE}.PredictionResponse",
    )
    return proto


def _add_proto3_optional_string(
    message: descriptor_pb2.DescriptorProto, name: str, number: int
) -> None:
    # ``optional`` in proto3 is a field alone in a synthetic oneof named after it.
    message.oneof_decl.add(name=f"_{name}")
    message.field.add(
        name=name,
        number=number,
        type=_Field.TYPE_STRING,
        label=_Field.LABEL_OPTIONAL,
        oneof_index=len(message.oneof_decl) - 1,
        proto3_optional=True,
    )


POOL = descriptor_pool.DescriptorPool()
_FILE = POOL.AddSerializedFile(_file_descriptor().SerializeToString())

PredictionsRequest: type[Message] = message_factory.GetMessageClass(
    POOL.FindMessageTypeByName(f"{PACKAGE}.PredictionsRequest")
)
PredictionResponse: type[Message] = message_factory.GetMessageClass(
    POOL.FindMessageTypeByName(f"{PACKAGE}.PredictionResponse")
)

_PREDICTIONS = POOL.FindServiceByName(f"{PACKAGE}.{SERVICE}").FindMethodByName("Predictions")
PREDICTIONS_METHOD = f"/{_PREDICTIONS.containing_service.full_name}/{_PREDICTIONS.name}"


def predictions_stub(channel: grpc.Channel) -> Callable[..., Any]:
    """A unary-unary callable for ``InferenceAPIsService/Predictions`` on ``channel``."""
    stub: Callable[..., Any] = channel.unary_unary(
        PREDICTIONS_METHOD,
        request_serializer=PredictionsRequest.SerializeToString,
        response_deserializer=PredictionResponse.FromString,
    )
    return stub
