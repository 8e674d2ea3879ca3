"""The trace context a backend call carries to its backend, as a context variable.

An unsampled request's context is the same for all its calls: the tracer sets it once, in the
request's own task, when the trace begins (each request has its own task in both front ends,
so it ends with the request). A recorded request's calls each set their client span's context
around the call (:mod:`gateway.tracing.calls`). Backend clients read it where they build the
request: the HTTP pool appends :attr:`Carrier.http` to the head, gRPC clients pass
:attr:`Carrier.grpc` as metadata. Unset (tracing off): one ``get`` per call.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import NamedTuple, Protocol

Metadata = tuple[tuple[str, str], ...]


class Carrier(Protocol):
    """``traceparent`` (and ``tracestate``) for a backend call, encoded for each transport."""

    @property
    def http(self) -> bytes:
        """Header lines, each ending in CRLF."""

    @property
    def grpc(self) -> Metadata: ...


class Outgoing(NamedTuple):
    """A :class:`Carrier` made for one call (a client span's, a shadow job's)."""

    http: bytes
    grpc: Metadata


def outgoing(traceparent: str, tracestate: str | None) -> Outgoing:
    if tracestate is None:
        return Outgoing(f"traceparent: {traceparent}\r\n".encode(), (("traceparent", traceparent),))
    return Outgoing(
        f"traceparent: {traceparent}\r\ntracestate: {tracestate}\r\n".encode(),
        (("traceparent", traceparent), ("tracestate", tracestate)),
    )


OUTGOING: ContextVar[Carrier | None] = ContextVar("gateway_outgoing_trace", default=None)


def grpc_metadata(metadata: Metadata | None = None) -> Metadata | None:
    """``metadata`` plus the current call's trace context, if any."""
    carrier = OUTGOING.get()
    if carrier is None:
        return metadata
    return carrier.grpc if metadata is None else metadata + carrier.grpc
