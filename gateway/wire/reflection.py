"""Descriptors of the real services (``tensorflow.serving.PredictionService``, ...) for gRPC
server reflection, built from our ``gateway.wire.*`` copies by dropping the package prefix.

They live in a private descriptor pool, never the default one: a process that also imports
TensorFlow keeps a single definition of ``tensorflow.TensorProto`` in its default pool.
"""

from __future__ import annotations

from types import ModuleType

from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, empty_pb2, wrappers_pb2

from gateway.wire import oip_pb2, tensorflow_pb2, tensorflow_serving_pb2, torchserve_pb2

PREFIX = "gateway.wire."
REFLECTED: tuple[ModuleType, ...] = (
    tensorflow_pb2,
    tensorflow_serving_pb2,
    torchserve_pb2,
    oip_pb2,
)
WELL_KNOWN: tuple[ModuleType, ...] = (any_pb2, wrappers_pb2, empty_pb2)


def public_name(name: str) -> str:
    """``gateway.wire.tensorflow.serving.PredictionService`` -> ``tensorflow.serving....``."""
    return name.removeprefix(PREFIX)


def _public_file(name: str) -> str:
    return name.replace("gateway/wire/", "gateway_public/") if name.startswith("gateway/") else name


def _rename_type(type_name: str) -> str:
    return (
        type_name.replace("." + PREFIX, ".", 1) if type_name.startswith("." + PREFIX) else type_name
    )


def _rename_messages(messages: list[descriptor_pb2.DescriptorProto]) -> None:
    for message in messages:
        for field in message.field:
            if field.type_name:
                field.type_name = _rename_type(field.type_name)
        _rename_messages(list(message.nested_type))


def _public_file_proto(module: ModuleType) -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto()
    module.DESCRIPTOR.CopyToProto(proto)
    proto.name = _public_file(proto.name)
    proto.package = public_name(proto.package)
    dependencies = [_public_file(name) for name in proto.dependency]
    del proto.dependency[:]
    proto.dependency.extend(dependencies)
    _rename_messages(list(proto.message_type))
    for service in proto.service:
        for method in service.method:
            method.input_type = _rename_type(method.input_type)
            method.output_type = _rename_type(method.output_type)
    return proto


def public_pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    for module in WELL_KNOWN:
        proto = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(proto)
        pool.Add(proto)
    for module in REFLECTED:
        pool.Add(_public_file_proto(module))
    return pool


def public_services() -> list[str]:
    """Full names of every service the gateway serves under its real name."""
    return [
        public_name(service.full_name)
        for module in REFLECTED
        for service in module.DESCRIPTOR.services_by_name.values()
    ]
