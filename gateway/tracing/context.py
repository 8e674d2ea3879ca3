"""The trace context a backend call carries to its backend, as a context variable.

The core sets it around one backend call (:mod:`gateway.tracing.calls`); backend clients read it
where they build the request: the HTTP pool appends :attr:`Outgoing.http` to the head, gRPC
clients pass :attr:`Outgoing.grpc` as metadata. Unset (tracing off): one ``get`` per call.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import NamedTuple

Metadata = tuple[tuple[str, str], ...]


class Outgoing(NamedTuple):
    """``traceparent`` (and ``tracestate``) for one backend call, encoded for each transport."""

    http: bytes
    """Header lines, each ending in CRLF."""
    grpc: Metadata


def outgoing(traceparent: str, tracestate: str | None) -> Outgoing:
    if tracestate is None:
        return Outgoing(f"traceparent: {traceparent}\r\n".encode(), (("traceparent", traceparent),))
    return Outgoing(
        f"traceparent: {traceparent}\r\ntracestate: {tracestate}\r\n".encode(),
        (("traceparent", traceparent), ("tracestate", tracestate)),
    )


OUTGOING: ContextVar[Outgoing | None] = ContextVar("gateway_outgoing_trace", default=None)


def grpc_metadata(metadata: Metadata | None = None) -> Metadata | None:
    """``metadata`` plus the current call's trace context, if any."""
    outgoing = OUTGOING.get()
    if outgoing is None:
        return metadata
    return outgoing.grpc if metadata is None else metadata + outgoing.grpc
