"""Starts each request's trace from the front end's headers or metadata, and samples it.

Sampling is decided here, once per request (the SDK's samplers are not called): a caller's
``traceparent`` decides for a parent-based sampler, else a new trace is recorded with
probability ``ratio``. Only a recorded request gets an attribute dict.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any

import grpc

from gateway.tracing.export import SpanSink
from gateway.tracing.settings import TraceSettings
from gateway.tracing.trace import Attributes, Trace, new_trace_id
from gateway.tracing.traceparent import clean_tracestate, parse_traceparent

HTTP_STATUS = "http.response.status_code"


class RequestTracer:
    def __init__(
        self,
        settings: TraceSettings,
        sink: SpanSink,
        chance: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.sink = sink
        self._parent_based = settings.parent_based
        self._ratio = settings.ratio
        self._chance = chance

    def begin_http(self, scope: MutableMapping[str, Any], route: str, protocol: str) -> Trace:
        """A request of a raw-ASGI endpoint; ``route`` is its path template."""
        traceparent = tracestate = None
        headers: Iterable[tuple[bytes, bytes]] = scope["headers"]
        for name, value in headers:
            if name == b"traceparent":
                traceparent = value.decode("latin-1")
            elif name == b"tracestate":
                tracestate = value.decode("latin-1")
        method: str = scope["method"]
        trace = self._begin(traceparent, tracestate, f"{method} {route}", HTTP_STATUS)
        if trace.attributes is not None:
            trace.attributes.update(
                {
                    "http.request.method": method,
                    "http.route": route,
                    "url.path": scope["path"],
                    "gateway.protocol": protocol,
                }
            )
            client = scope.get("client")
            if isinstance(client, tuple | list) and client:
                trace.attributes["client.address"] = str(client[0])
        return trace

    def begin_grpc(self, context: grpc.aio.ServicerContext, rpc: str, protocol: str) -> Trace:
        """A call of ``rpc`` (``package.Service/Method``)."""
        traceparent = tracestate = None
        for key, value in context.invocation_metadata() or ():
            if key == "traceparent":
                traceparent = value
            elif key == "tracestate":
                tracestate = value
        trace = self._begin(traceparent, tracestate, rpc, None)
        if trace.attributes is not None:
            service, _, method = rpc.partition("/")
            trace.attributes.update(
                {
                    "rpc.system": "grpc",
                    "rpc.service": service,
                    "rpc.method": method,
                    "gateway.protocol": protocol,
                }
            )
        return trace

    def _begin(
        self,
        traceparent: str | bytes | None,
        tracestate: str | bytes | None,
        name: str,
        status_key: str | None,
    ) -> Trace:
        parent = None
        if traceparent is not None:
            if isinstance(traceparent, bytes):
                traceparent = traceparent.decode("latin-1")
            parent = parse_traceparent(traceparent.strip())
        if parent is not None:
            trace_id = parent.trace_id
            if self._parent_based:
                sampled = parent.sampled
            else:
                sampled = self._ratio > 0 and self._chance() < self._ratio
            if isinstance(tracestate, bytes):
                tracestate = tracestate.decode("latin-1")
            state = clean_tracestate(tracestate.strip()) if tracestate else None
        else:
            trace_id = new_trace_id()
            sampled = self._ratio > 0 and self._chance() < self._ratio
            state = None  # a tracestate without a valid traceparent is dropped (W3C)
        attributes: Attributes | None = {} if sampled else None
        sink = self.sink if sampled else None
        return Trace(trace_id, parent, sampled, state, sink, name, attributes, status_key)

    def shutdown(self) -> None:
        self.sink.shutdown()
