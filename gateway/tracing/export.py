"""Finished spans -> the OpenTelemetry SDK's batch processor -> its OTLP/gRPC exporter.

The request path makes one plain tuple per finished span (:data:`SpanRecord`) from what it
measured and queues it in the SDK's batching (the ``BatchSpanProcessor``'s queue and worker
thread); that thread encodes the records straight to OTLP bytes (:mod:`gateway.tracing.encode`)
and sends batches with the SDK's OTLP/gRPC exporter. No SDK object is made per span: the SDK's
``Tracer.start_span`` costs about 30 us per span (attribute validation under locks, a sampler
call, context objects), and a ``ReadableSpan`` with its two ``SpanContext``s about 5 us.

Imported only when tracing is on: a gateway without it never loads the SDK.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Sequence
from typing import cast

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from gateway import __version__
from gateway.tracing.encode import CLIENT, SERVER, GatewaySpanExporter, SpanRecord
from gateway.tracing.settings import TraceSettings
from gateway.tracing.trace import Attributes, RecordedTrace

SCOPE = InstrumentationScope("gateway", __version__)
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_UNSET = Status(StatusCode.UNSET)
SHUTDOWN_S = 2.0


class _Resource(Resource):
    """A resource whose hash is computed once: the exporter groups every span by its resource,
    and the SDK's ``Resource.__hash__`` serializes the attributes to JSON each time."""

    def __init__(self, resource: Resource) -> None:
        super().__init__(resource.attributes, resource.schema_url)
        self._hash = super().__hash__()

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return super().__eq__(other)


_KINDS = {SERVER: SpanKind.SERVER, CLIENT: SpanKind.CLIENT}


def readable_span(record: SpanRecord, resource: Resource) -> ReadableSpan:
    """The SDK's span record of ``record``, for an SDK exporter (the gateway's own encodes the
    records without one)."""
    name, kind, trace_id, span_id, parent_id, remote, attributes, start, end, error = record
    parent = None
    if parent_id is not None:
        parent = SpanContext(trace_id, parent_id, remote, _SAMPLED)
    return ReadableSpan(
        name,
        SpanContext(trace_id, span_id, False, _SAMPLED),
        parent,
        resource,
        attributes,
        kind=_KINDS[kind],
        status=_UNSET if error is None else Status(StatusCode.ERROR, error),
        start_time=start,
        end_time=end,
        instrumentation_scope=SCOPE,
    )


class _RecordExporter(SpanExporter):
    """What the batch processor exports to: the gateway's exporter takes the records as they
    are; any other SDK exporter (the tests' in-memory one) gets ``ReadableSpan``s."""

    def __init__(self, exporter: SpanExporter, resource: Resource) -> None:
        self._exporter = exporter
        self._resource = resource
        self._records = isinstance(exporter, GatewaySpanExporter)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._records:
            return self._exporter.export(spans)
        records = cast(Sequence[SpanRecord], spans)
        return self._exporter.export([readable_span(r, self._resource) for r in records])

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        shutdown = self._exporter.shutdown
        if "timeout_millis" in inspect.getfullargspec(shutdown).args:
            shutdown(timeout_millis=timeout_millis)  # type: ignore[call-arg]
        else:
            shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._exporter.force_flush(timeout_millis)


class SpanSink:
    """Where a worker's finished spans go. One per worker process (the batch thread is)."""

    def __init__(self, settings: TraceSettings, exporter: SpanExporter | None = None) -> None:
        self.resource = _Resource(Resource.create({SERVICE_NAME: settings.service_name}))
        if exporter is None:
            exporter = GatewaySpanExporter(
                self.resource, SCOPE, settings.endpoint, settings.export_timeout_s
            )
        self._exporter = exporter
        self._processor = BatchSpanProcessor(
            _RecordExporter(exporter, self.resource),
            max_queue_size=settings.max_queue_size,
            schedule_delay_millis=settings.schedule_delay_ms,
            max_export_batch_size=settings.max_export_batch_size,
        )
        # ``on_end`` wants a ReadableSpan (its sampled flag); the batching under it queues
        # whatever it is given, and every record here is sampled.
        self._emit = cast(Callable[[SpanRecord], None], self._processor._batch_processor.emit)

    def server_span(
        self, trace: RecordedTrace, attributes: Attributes, end_ns: int, error: str | None
    ) -> None:
        """Queue the request's server span (its parent: the caller, if it sent a traceparent)."""
        parent = trace.parent
        self._emit((
            trace.name, SERVER, trace.trace_id, trace.span_id,
            None if parent is None else parent.span_id, parent is not None,
            attributes, trace.start_ns, end_ns, error,
        ))  # fmt: skip

    def client_span(
        self,
        trace: RecordedTrace,
        name: str,
        span_id: int,
        attributes: Attributes,
        start_ns: int,
        end_ns: int,
        error: str | None,
    ) -> None:
        """Queue a backend call's span, a child of the request's server span."""
        self._emit((
            name, CLIENT, trace.trace_id, span_id, trace.span_id, False,
            attributes, start_ns, end_ns, error,
        ))  # fmt: skip

    def flush(self, timeout_ms: int = 10_000) -> bool:
        """Export every queued span now; False if that took longer than ``timeout_ms``."""
        return self._processor.force_flush(timeout_ms)

    def shutdown(self, timeout_s: float = SHUTDOWN_S) -> None:
        """Export what is queued and stop, within about ``timeout_s``: with the collector down,
        the exporter's retries are cut short and the spans still queued are dropped."""
        stopping = threading.Thread(
            target=self._processor.shutdown, name="span-sink-shutdown", daemon=True
        )
        stopping.start()
        stopping.join(timeout_s)
        if stopping.is_alive():
            self._exporter.shutdown()
            stopping.join(timeout_s)
