"""Starts each request's trace from the front end's headers or metadata, and samples it.

Sampling is decided here, once per request (the SDK's samplers are not called): a caller's
``traceparent`` decides for a parent-based sampler, else a new trace is recorded with
probability ``ratio``. Only a recorded request gets an attribute dict; an unsampled one is
its ``traceparent`` bytes, made from one random draw (:func:`~gateway.tracing.trace.unsampled`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any

import grpc

from gateway.tracing.context import OUTGOING
from gateway.tracing.export import SpanSink
from gateway.tracing.settings import TraceSettings
from gateway.tracing.trace import LOW64, RecordedTrace, Trace, new_trace_id, random_bits, unsampled
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
        """A request of a raw-ASGI endpoint; ``route`` is its path template. Sets the trace
        context of the calling task's backend calls (the request's own task)."""
        traceparent = tracestate = None
        headers: Iterable[tuple[bytes, bytes]] = scope["headers"]
        for name, value in headers:
            if name == b"traceparent":
                traceparent = value
            elif name == b"tracestate":
                tracestate = value
        if traceparent is None:
            if not (self._ratio and self._chance() < self._ratio):
                # The common unsampled case inline: a call costs as much as the rest of it.
                bits = random_bits(192)
                trace = Trace(b"00-%032x-%016x-00" % (bits >> 64 or 1, bits & LOW64 or 1), None)
                OUTGOING.set(trace)
                return trace
            trace = RecordedTrace(new_trace_id(), None, None, self.sink)
        else:
            trace = self._begin(traceparent, tracestate)
        if isinstance(trace, RecordedTrace):
            method: str = scope["method"]
            trace.name = f"{method} {route}"
            trace.status_key = HTTP_STATUS
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
        else:
            OUTGOING.set(trace)
        return trace

    def begin_grpc(self, context: grpc.aio.ServicerContext, rpc: str, protocol: str) -> Trace:
        """A call of ``rpc`` (``package.Service/Method``). Sets the trace context of the calling
        task's backend calls (the call's own task)."""
        traceparent = tracestate = None
        for key, value in context.invocation_metadata() or ():
            if key == "traceparent":
                traceparent = value
            elif key == "tracestate":
                tracestate = value
        trace = self._begin(traceparent, tracestate)
        if isinstance(trace, RecordedTrace):
            trace.name = rpc
            service, _, method = rpc.partition("/")
            trace.attributes.update(
                {
                    "rpc.system": "grpc",
                    "rpc.service": service,
                    "rpc.method": method,
                    "gateway.protocol": protocol,
                }
            )
        else:
            OUTGOING.set(trace)
        return trace

    def _begin(self, traceparent: str | bytes | None, tracestate: str | bytes | None) -> Trace:
        if traceparent is None:  # the common case first, with nothing parsed
            if self._ratio > 0 and self._chance() < self._ratio:
                return RecordedTrace(new_trace_id(), None, None, self.sink)
            return unsampled()
        if isinstance(traceparent, bytes):
            traceparent = traceparent.decode("latin-1")
        parent = parse_traceparent(traceparent.strip())
        if parent is None:
            return self._begin(None, None)  # a tracestate without a valid traceparent is dropped
        if self._parent_based:
            sampled = parent.sampled
        else:
            sampled = self._ratio > 0 and self._chance() < self._ratio
        if isinstance(tracestate, bytes):
            tracestate = tracestate.decode("latin-1")
        state = clean_tracestate(tracestate.strip()) if tracestate else None
        if sampled:
            return RecordedTrace(parent.trace_id, parent, state, self.sink)
        return unsampled(state, parent.trace_id)

    def shutdown(self) -> None:
        self.sink.shutdown()
