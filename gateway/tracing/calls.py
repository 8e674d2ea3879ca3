"""The hook around one backend call: counts the attempt, and when the request is recorded, sets
the context the backend gets (its client span's) and exports a client span for the call. An
unsampled request's calls need nothing here: its context was set when its trace began.

    with backend_call(record, variant):
        response = await backend.infer(...)

Retries wrap each attempt in its own ``backend_call``; a shadow call passes ``shadow=True``.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import TYPE_CHECKING

from gateway.errors import GatewayError
from gateway.tracing.context import OUTGOING, Carrier
from gateway.tracing.trace import RecordedTrace, new_span_id

if TYPE_CHECKING:
    from gateway.metrics import RequestRecord
    from gateway.routing.router import Variant


class _Untraced:
    """The request has no trace: nothing to do around the call."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


UNTRACED = _Untraced()
_NAMES: dict[tuple[str, str], str] = {}
"""Client span names by (backend kind, protocol): ``oip rest infer``, ``tfserving grpc infer``."""


class PassedOn:
    """An unsampled request's shadow call (which may run in a task of its own): the backend
    gets the request's own ``traceparent``."""

    __slots__ = ("_outgoing", "_token")

    def __init__(self, outgoing: Carrier) -> None:
        self._outgoing = outgoing

    def __enter__(self) -> None:
        self._token = OUTGOING.set(self._outgoing)

    def __exit__(self, *exc: object) -> None:
        OUTGOING.reset(self._token)


class TracedCall:
    """A sampled request's call: a client span of its own, whose id the backend gets."""

    __slots__ = ("_attempt", "_shadow", "_span_id", "_start_ns", "_token", "_trace", "_variant")

    def __init__(self, trace: RecordedTrace, variant: Variant, attempt: int, shadow: bool) -> None:
        self._trace = trace
        self._variant = variant
        self._attempt = attempt
        self._shadow = shadow
        self._span_id = 0
        self._start_ns = 0

    def __enter__(self) -> None:
        self._span_id = new_span_id()
        self._start_ns = time.time_ns()
        self._token = OUTGOING.set(self._trace.outgoing(self._span_id))

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        OUTGOING.reset(self._token)
        trace = self._trace
        variant = self._variant
        backend = variant.backend
        attributes: dict[str, str | bool | int | float] = {
            "gateway.backend": backend.name,
            "gateway.runtime": backend.runtime,
            "gateway.variant": variant.name,
            "gateway.attempt": self._attempt,
            "gateway.shadow": self._shadow,
        }
        message = None
        if error is not None:
            attributes["error.type"] = type(error).__name__
            message = error.message if isinstance(error, GatewayError) else repr(error)
        name = _NAMES.get((backend.kind, backend.protocol))
        if name is None:
            name = _NAMES[(backend.kind, backend.protocol)] = (
                f"{backend.kind} {backend.protocol} infer"
            )
        end_ns = time.time_ns()
        trace.sink.client_span(
            trace, name, self._span_id, attributes, self._start_ns, end_ns, message
        )


def backend_call(
    record: RequestRecord, variant: Variant, shadow: bool = False
) -> TracedCall | PassedOn | _Untraced:
    """The context manager to put around one call of ``variant``'s backend."""
    if shadow:
        record.shadowed = True
    else:
        record.attempts += 1
    trace = record.trace
    if trace is None:
        return UNTRACED
    if not isinstance(trace, RecordedTrace):
        return PassedOn(trace) if shadow else UNTRACED
    return TracedCall(trace, variant, record.attempts, shadow)
