"""The gRPC front end: one ``grpc.aio`` server in the worker's event loop, serving the Open
Inference Protocol, TF Serving's and TorchServe's APIs, health checking and (unless turned off)
reflection, in plaintext or over TLS.

Every handler runs inside :meth:`GrpcFrontEnd._behavior`, the one place where a gateway error
becomes a gRPC status, any other exception becomes INTERNAL, ``x-gateway-variant`` (and, when
tracing is on, ``traceparent``) is sent and an inference request is reported to the observer
(metrics, trace, access log).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import NoReturn

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection_pb2

from gateway.access_log import GrpcOrigin
from gateway.config import ServerConfig, TlsConfig
from gateway.errors import (
    CLIENT_CLOSED,
    HTTP_STATUS,
    ErrorCode,
    GatewayError,
    InternalError,
    Overloaded,
    grpc_status,
    http_status,
)
from gateway.grpc.call import Call, Method
from gateway.grpc.library_services import HEALTH_SERVICE, REFLECTION_SERVICE, add_library_services
from gateway.grpc.oip import OipService
from gateway.grpc.tfserving import TFServingService
from gateway.grpc.torchserve import TorchServeService
from gateway.limits import ConcurrencyLimit
from gateway.metrics import RequestRecord
from gateway.service import InferenceService
from gateway.wire.reflection import public_pool, public_services

log = logging.getLogger(__name__)

HEALTH_POLL_S = 0.5
TIMED_OUT = HTTP_STATUS[ErrorCode.UPSTREAM_TIMEOUT]

Behavior = Callable[[bytes, grpc.aio.ServicerContext], Awaitable[bytes]]


MAX_STATUS_MESSAGE_BYTES = 2000
"""The status message travels in the trailers, percent-encoded (up to 3 bytes a byte), and
clients refuse trailers over 8 KiB by default: then they see "Stream removed", not the error."""


def status_message(message: str) -> str:
    """``message`` cut to ``MAX_STATUS_MESSAGE_BYTES`` of UTF-8 (an error may quote a long value
    of the client's), saying how long it was."""
    encoded = message.encode()
    if len(encoded) <= MAX_STATUS_MESSAGE_BYTES:
        return message
    kept = encoded[:MAX_STATUS_MESSAGE_BYTES].decode(errors="ignore")
    return f"{kept}... ({len(encoded)} bytes in all)"


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _abort(
    context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str
) -> NoReturn:
    await context.abort(code, message)
    raise AssertionError("grpc.aio's abort() raises")


def server_options(config: ServerConfig, reuse_port: bool) -> list[tuple[str, int]]:
    """The gRPC server's channel arguments: message limits, port sharing, connection age."""
    options = [
        ("grpc.max_receive_message_length", config.max_request_bytes),
        ("grpc.max_send_message_length", config.max_request_bytes),
        ("grpc.so_reuseport", 1 if reuse_port else 0),
    ]
    if config.grpc_max_connection_age_s is not None:
        # HTTP/2 connections outlive any number of requests: without an age, a client keeps
        # its first gateway replica for good and replicas added later get none of its calls.
        age_ms = round(config.grpc_max_connection_age_s * 1000)
        grace_ms = round(config.grpc_max_connection_age_grace_s * 1000)
        options += [
            ("grpc.max_connection_age_ms", age_ms),
            ("grpc.max_connection_age_grace_ms", grace_ms),
        ]
    return options


def server_credentials(tls: TlsConfig) -> grpc.ServerCredentials:
    key, cert = tls.key_file.read_bytes(), tls.cert_file.read_bytes()
    return grpc.ssl_server_credentials([(key, cert)])


def _reflection_pool() -> descriptor_pool.DescriptorPool:
    """The public services, plus health and reflection so that they can be described too."""
    pool = public_pool()
    for module in (health_pb2, reflection_pb2):
        proto = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(proto)
        pool.Add(proto)
    return pool


class GrpcFrontEnd:
    def __init__(self, service: InferenceService, config: ServerConfig) -> None:
        assert config.grpc is not None
        self._service = service
        self._config = config
        self._listen = config.grpc
        self._sticky_key = config.sticky_header
        self._variant_key = config.variant_header
        self._services: dict[str, dict[str, Method]] = {
            **OipService(service, config.max_request_bytes).methods(),
            **TFServingService(service, config.max_request_bytes).methods(),
            **TorchServeService(service, config.max_request_bytes).methods(),
        }
        self.concurrency = ConcurrencyLimit(
            config.limits.max_concurrent_requests, "gRPC", service.metrics.shed_one
        )
        self._server: grpc.aio.Server | None = None
        self._health: health_aio.HealthServicer | None = None
        self._health_task: asyncio.Task[None] | None = None

    async def start(self, reuse_port: bool) -> int:
        """Listen and serve; returns the bound port. With ``reuse_port`` off, a port in use is
        an error instead of a silently shared accept queue."""
        server = grpc.aio.server(options=server_options(self._config, reuse_port))
        for name, methods in self._services.items():
            handlers = {
                method: grpc.unary_unary_rpc_method_handler(
                    self._behavior(spec, f"{name}/{method}")
                )
                for method, spec in methods.items()
            }
            server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, handlers),))
            server.add_registered_method_handlers(name, handlers)
        names = public_services()
        reflected = None
        if self._config.grpc_reflection:
            reflected = ([*names, HEALTH_SERVICE, REFLECTION_SERVICE], _reflection_pool())
        health = add_library_services(server, reflected)
        address = _address(self._listen.host, self._listen.port)
        tls = self._config.tls
        try:
            if tls is None:
                port = int(server.add_insecure_port(address))
            else:
                port = int(server.add_secure_port(address, server_credentials(tls)))
        except RuntimeError as error:
            raise OSError(f"cannot listen for gRPC on {address}: {error}") from None
        serving = self._service.readiness.server_ready()
        await self._publish(health, names, serving)
        await server.start()
        self._server, self._health = server, health
        self._health_task = asyncio.create_task(
            self._track_readiness(health, names, serving), name="grpc-health"
        )
        return port

    async def drain(self) -> None:
        """Report NOT_SERVING from now on (calls are still served)."""
        if self._health_task is not None:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
            self._health_task = None
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
            self._health = None

    async def stop(self, grace: float) -> None:
        """Report NOT_SERVING, stop accepting, and give in-flight calls ``grace`` seconds."""
        await self.drain()
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None

    async def _publish(
        self, health: health_aio.HealthServicer, names: list[str], serving: bool
    ) -> None:
        status = health_pb2.HealthCheckResponse
        for name in ("", *names):
            await health.set(name, status.SERVING if serving else status.NOT_SERVING)

    async def _track_readiness(
        self, health: health_aio.HealthServicer, names: list[str], serving: bool
    ) -> None:
        while True:
            await asyncio.sleep(HEALTH_POLL_S)
            ready = self._service.readiness.server_ready()
            if ready != serving:
                await self._publish(health, names, ready)
                serving = ready

    def _behavior(self, method: Method, rpc: str) -> Behavior:
        observer = self._service.observer
        handler, protocol = method.handler, method.protocol
        concurrency = self.concurrency

        async def behavior(body: bytes, context: grpc.aio.ServicerContext) -> bytes:
            record = None
            if protocol:
                record = RequestRecord(protocol, time.perf_counter())
                record.origin = GrpcOrigin(context, rpc)
                record.bytes_in = len(body)
                if observer.tracer is not None:
                    record.trace = observer.tracer.begin_grpc(context, rpc, protocol)
            status = 500
            code = grpc.StatusCode.INTERNAL
            try:
                call = Call(context, self._sticky_key, self._variant_key, record)
                if record is None:
                    reply = await handler(body, call)
                else:  # inference: counted against the worker's limit
                    concurrency.enter()
                    try:
                        reply = await handler(body, call)
                    finally:
                        concurrency.leave()
                await self._send_variant(context, record)
                status, code = 200, grpc.StatusCode.OK
                if record is not None:
                    record.bytes_out = len(reply)
                return reply
            except asyncio.CancelledError:
                # The client cancelled, or its deadline passed while the backend worked.
                remaining = context.time_remaining()
                if remaining is not None and remaining <= 0:
                    status, code = TIMED_OUT, grpc.StatusCode.DEADLINE_EXCEEDED
                else:
                    status, code = CLIENT_CLOSED, grpc.StatusCode.CANCELLED
                raise
            except Exception as caught:
                error = caught if isinstance(caught, GatewayError) else None
                if error is None:
                    log.exception("gRPC call %s failed", handler.__qualname__)
                    error = InternalError("internal gateway error; see its log")
                status, code = http_status(error), grpc_status(error)
                if record is not None:
                    record.error = error.message
                await self._send_variant(context, record)
                if isinstance(error, Overloaded):
                    # gRPC's own retry policies read this trailer as the delay to wait.
                    pushback = str(error.retry_after_s * 1000)
                    context.set_trailing_metadata((("grpc-retry-pushback-ms", pushback),))
                await _abort(context, code, status_message(error.message))
            finally:
                if record is not None:
                    if record.trace is not None and record.trace.attributes is not None:
                        record.trace.attributes["rpc.grpc.status_code"] = code.value[0]
                    observer.finish(record, status)

        return behavior

    async def _send_variant(
        self, context: grpc.aio.ServicerContext, record: RequestRecord | None
    ) -> None:
        """``x-gateway-variant`` and ``traceparent``, in the initial metadata (sent once)."""
        if record is None:
            return
        metadata: tuple[tuple[str, str], ...] = ()
        if record.variant is not None:
            metadata = ((self._variant_key, record.variant.name),)
        if record.trace is not None:
            metadata += (("traceparent", record.trace.traceparent),)
        if metadata:
            await context.send_initial_metadata(metadata)
