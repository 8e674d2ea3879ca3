"""One request's trace: its ``traceparent`` and, when it is recorded, its server span's data.

An unsampled request (:class:`Trace`) has its ``traceparent`` as bytes, made once (the
response's header value, the line the backends get, the access log's trace id), and nothing
else: no ids as integers, no attribute dict, no SDK object, nothing exported. A recorded one
(:class:`RecordedTrace`) also keeps its ids, its start and its attributes for export.
"""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING, ClassVar

from gateway.tracing.context import Metadata, Outgoing, outgoing
from gateway.tracing.traceparent import Parent, format_traceparent

if TYPE_CHECKING:
    from gateway.metrics import RequestRecord
    from gateway.tracing.export import SpanSink

Attributes = dict[str, str | bool | int | float]


random_bits = random.getrandbits
LOW64 = (1 << 64) - 1


def new_span_id() -> int:
    return random_bits(64) or 1


def new_trace_id() -> int:
    return random_bits(128) or 1


class Trace:
    """An unsampled request's trace context, which is also what its backend calls carry
    (:class:`~gateway.tracing.context.Carrier`): the request's own span id, flag ``00``."""

    __slots__ = ("header", "http", "tracestate")
    sampled: ClassVar[bool] = False
    attributes: Attributes | None = None
    sink: SpanSink | None = None

    def __init__(self, header: bytes, tracestate: str | None) -> None:
        self.header = header
        """``traceparent``, ASCII."""
        self.tracestate = tracestate
        if tracestate is None:
            self.http = b"traceparent: " + header + b"\r\n"
        else:
            self.http = b"traceparent: %s\r\ntracestate: %s\r\n" % (header, tracestate.encode())

    @property
    def traceparent(self) -> str:
        return self.header.decode()

    @property
    def trace_id_hex(self) -> str:
        return self.header[3:35].decode()

    @property
    def grpc(self) -> Metadata:
        if self.tracestate is None:
            return (("traceparent", self.header.decode()),)
        return (("traceparent", self.header.decode()), ("tracestate", self.tracestate))

    def end(self, record: RequestRecord, status: int) -> None:
        """Nothing to export."""


def unsampled(tracestate: str | None = None, trace_id: int = 0) -> Trace:
    """An unsampled trace: the caller's ``trace_id`` (with its ``tracestate``), else a new one.
    Both ids come from one draw (the HTTP front end inlines the new one's)."""
    bits = random_bits(192 if trace_id == 0 else 64)
    span_id = bits & LOW64 or 1
    if trace_id == 0:
        trace_id = bits >> 64 or 1
    return Trace(b"00-%032x-%016x-00" % (trace_id, span_id), tracestate)


class RecordedTrace(Trace):
    """A sampled request's trace: its server span is exported when it ends."""

    __slots__ = (
        "attributes",
        "name",
        "parent",
        "sink",
        "span_id",
        "start_ns",
        "status_key",
        "trace_id",
    )
    sampled: ClassVar[bool] = True
    attributes: Attributes
    sink: SpanSink

    def __init__(
        self, trace_id: int, parent: Parent | None, tracestate: str | None, sink: SpanSink
    ) -> None:
        self.trace_id = trace_id
        self.span_id = span_id = new_span_id()
        self.parent = parent
        self.sink = sink
        self.attributes = {}
        self.name = ""
        """Set by the front end, with the attributes of the request."""
        self.status_key: str | None = None
        """The attribute that gets the HTTP status (gRPC spans carry their own code instead)."""
        self.start_ns = time.time_ns()
        Trace.__init__(self, b"00-%032x-%016x-01" % (trace_id, span_id), tracestate)

    def outgoing(self, span_id: int) -> Outgoing:
        """What a backend call sends: its client span's id."""
        return outgoing(format_traceparent(self.trace_id, span_id, True), self.tracestate)

    def end(self, record: RequestRecord, status: int) -> None:
        """Export the server span, with the routing decision the request ended with."""
        attributes = self.attributes
        attributes["gateway.protocol"] = record.protocol
        if record.model:
            attributes["gateway.model"] = record.model
        variant = record.variant
        if variant is not None:
            backend = variant.backend
            attributes["gateway.version"] = variant.version
            attributes["gateway.variant"] = variant.name
            attributes["gateway.backend"] = backend.name
            attributes["gateway.runtime"] = backend.runtime
        attributes["gateway.retries"] = max(record.attempts - 1, 0)
        attributes["gateway.shadow"] = record.shadowed
        if self.status_key is not None:
            attributes[self.status_key] = status
        error = f"status {status}" if status >= 500 else None
        self.sink.server_span(self, attributes, time.time_ns(), error)
