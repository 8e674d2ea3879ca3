"""Health checking and reflection, the gRPC libraries' own servicers, behind the gateway's parsing.

Registered as the libraries do it, grpc deserializes each request itself: a malformed one is
UNKNOWN, with a traceback in the log for every call (a log flood anyone can send). Here each
handler takes bytes and parses them with :func:`gateway.grpc.call.parse`, so a malformed request
is INVALID_ARGUMENT naming the message, and nothing is logged.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc
from grpc_reflection.v1alpha.reflection import aio as reflection_aio

from gateway.errors import InvalidInput
from gateway.grpc.call import parse

Parse = Callable[[bytes], Any]
Handlers = dict[str, grpc.RpcMethodHandler]


class _Collector:
    """Stands in for the server in a generated ``add_*Servicer_to_server``: keeps the handlers
    it registers, for :func:`_bytes_in` to wrap."""

    def __init__(self) -> None:
        self.services: dict[str, Handlers] = {}

    def add_generic_rpc_handlers(self, handlers: object) -> None:
        """The same handlers again, as a generic handler: the wrapped ones replace them."""

    def add_registered_method_handlers(self, service: str, handlers: Handlers) -> None:
        self.services[service] = handlers


def _parser(handler: grpc.RpcMethodHandler) -> Parse:
    """``bytes -> message`` with the handler's message type, refusing a malformed one."""
    deserialize = handler.request_deserializer
    message_type: type[Message] = deserialize.__self__  # the generated code passes X.FromString
    return lambda body: parse(message_type, body)


async def _parsed(
    parse_one: Parse, bodies: AsyncIterable[bytes], context: grpc.aio.ServicerContext
) -> AsyncIterator[Any]:
    async for body in bodies:
        try:
            yield parse_one(body)
        except InvalidInput as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, error.message)


async def _parse_or_abort(parse_one: Parse, body: bytes, context: grpc.aio.ServicerContext) -> Any:
    try:
        return parse_one(body)
    except InvalidInput as error:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, error.message)


def _bytes_in(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """``handler`` taking its requests as bytes, parsed by the gateway."""
    parse_one = _parser(handler)
    serializer = handler.response_serializer
    if handler.unary_unary is not None:
        behavior = handler.unary_unary

        async def unary_unary(body: bytes, context: grpc.aio.ServicerContext) -> Any:
            return await behavior(await _parse_or_abort(parse_one, body, context), context)

        return grpc.unary_unary_rpc_method_handler(unary_unary, response_serializer=serializer)
    if handler.unary_stream is not None:
        streaming = handler.unary_stream
        if inspect.isasyncgenfunction(streaming):
            raise TypeError(f"{streaming!r}: only context.write() streams are wrapped")

        async def unary_stream(body: bytes, context: grpc.aio.ServicerContext) -> None:
            await streaming(await _parse_or_abort(parse_one, body, context), context)

        return grpc.unary_stream_rpc_method_handler(unary_stream, response_serializer=serializer)
    assert handler.stream_stream is not None, "health and reflection have no stream-unary RPC"
    both = handler.stream_stream

    async def stream_stream(
        bodies: AsyncIterable[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        async for reply in both(_parsed(parse_one, bodies, context), context):
            yield reply

    return grpc.stream_stream_rpc_method_handler(stream_stream, response_serializer=serializer)


def add_library_services(
    server: grpc.aio.Server, reflected: tuple[list[str], DescriptorPool] | None
) -> health_aio.HealthServicer:
    """Add health checking (returned, for the caller to set) and, if ``reflected`` gives the
    services to describe and the pool that describes them, reflection."""
    collector = _Collector()
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, collector)
    if reflected is not None:
        names, pool = reflected
        servicer = reflection_aio.ReflectionServicer(names, pool=pool)
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, collector)
    for service, handlers in collector.services.items():
        wrapped = {method: _bytes_in(handler) for method, handler in handlers.items()}
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, wrapped),))
        server.add_registered_method_handlers(service, wrapped)
    return health


HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
REFLECTION_SERVICE = reflection.SERVICE_NAME
