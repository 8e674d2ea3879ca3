"""One request's trace: its ids, whether it is recorded, and (if so) its server span's data.

An unsampled request still has a trace id (the response's ``traceparent``, the access log and
the backend get it) but no span data: no attribute dict, no SDK object, nothing exported.
"""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING

from gateway.tracing.context import Outgoing, outgoing
from gateway.tracing.traceparent import Parent, format_traceparent

if TYPE_CHECKING:
    from gateway.metrics import RequestRecord
    from gateway.tracing.export import SpanSink

Attributes = dict[str, str | bool | int | float]


_bits = random.getrandbits


def new_span_id() -> int:
    return _bits(64) or 1


def new_trace_id() -> int:
    return _bits(128) or 1


class Trace:
    __slots__ = (
        "_outgoing",
        "attributes",
        "name",
        "parent",
        "sampled",
        "sink",
        "span_id",
        "start_ns",
        "status_key",
        "trace_id",
        "traceparent",
        "tracestate",
    )

    def __init__(
        self,
        trace_id: int,
        parent: Parent | None,
        sampled: bool,
        tracestate: str | None,
        sink: SpanSink | None,
        name: str,
        attributes: Attributes | None,
        status_key: str | None = None,
    ) -> None:
        self.trace_id = trace_id
        self.span_id = span_id = _bits(64) or 1
        self.parent = parent
        self.sampled = sampled
        self.tracestate = tracestate
        self.sink = sink
        self.name = name
        self.attributes = attributes
        self.status_key = status_key
        """The attribute that gets the HTTP status (gRPC spans carry their own code instead)."""
        self.start_ns = time.time_ns() if sampled else 0
        self.traceparent = format_traceparent(trace_id, span_id, sampled)
        self._outgoing: Outgoing | None = None

    @property
    def trace_id_hex(self) -> str:
        return self.traceparent[3:35]

    def outgoing(self, span_id: int | None = None) -> Outgoing:
        """What a backend call sends: the client span's id when recorded, else this span's."""
        if span_id is not None:
            return outgoing(format_traceparent(self.trace_id, span_id, True), self.tracestate)
        if self._outgoing is None:
            self._outgoing = outgoing(self.traceparent, self.tracestate)
        return self._outgoing

    def end(self, record: RequestRecord, status: int) -> None:
        """Export the server span, with the routing decision the request ended with."""
        attributes, sink = self.attributes, self.sink
        if attributes is None or sink is None:
            return
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
        sink.server_span(self, attributes, time.time_ns(), error)
