"""Finished spans -> the OpenTelemetry SDK's batch processor -> its OTLP/gRPC exporter.

The request path builds the SDK's own span records (``ReadableSpan``) from what it measured and
hands them to ``BatchSpanProcessor.on_end``, which only queues them; the SDK's worker thread
encodes and sends batches. The SDK's ``Tracer.start_span`` is skipped on purpose: it costs about
30 us per span (attribute validation under locks, a sampler call, context objects), twice the
gateway's whole per-request budget for tracing.

Imported only when tracing is on: a gateway without it never loads the SDK.
"""

from __future__ import annotations

import logging

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from gateway import __version__
from gateway.tracing.settings import TraceSettings
from gateway.tracing.trace import Attributes
from gateway.tracing.traceparent import Parent

log = logging.getLogger(__name__)

SCOPE = InstrumentationScope("gateway", __version__)
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_UNSET = Status(StatusCode.UNSET)
_FLAGS = {True: _SAMPLED, False: TraceFlags(TraceFlags.DEFAULT)}
_KINDS = {kind.value: kind for kind in SpanKind}


class SpanSink:
    """Where a worker's finished spans go. One per worker process (the batch thread is)."""

    def __init__(self, settings: TraceSettings, exporter: SpanExporter | None = None) -> None:
        self.resource = Resource.create({SERVICE_NAME: settings.service_name})
        if exporter is None:
            exporter = OTLPSpanExporter(
                endpoint=settings.endpoint, timeout=settings.export_timeout_s
            )
        self._processor = BatchSpanProcessor(
            exporter,
            max_queue_size=settings.max_queue_size,
            schedule_delay_millis=settings.schedule_delay_ms,
            max_export_batch_size=settings.max_export_batch_size,
        )

    def emit(
        self,
        name: str,
        kind: int,
        trace_id: int,
        span_id: int,
        parent: Parent | None,
        attributes: Attributes,
        start_ns: int,
        end_ns: int,
        error: str | None = None,
    ) -> None:
        """Queue one finished span; ``parent`` is a remote caller or a span of this request."""
        status = _UNSET if error is None else Status(StatusCode.ERROR, error)
        if parent is not None:
            context: SpanContext | None = SpanContext(
                parent.trace_id, parent.span_id, parent.remote, _FLAGS[parent.sampled]
            )
        else:
            context = None
        span = ReadableSpan(
            name,
            SpanContext(trace_id, span_id, False, _SAMPLED),
            context,
            self.resource,
            attributes,
            kind=_KINDS[kind],
            status=status,
            start_time=start_ns,
            end_time=end_ns,
            instrumentation_scope=SCOPE,
        )
        self._processor.on_end(span)

    def flush(self, timeout_ms: int = 10_000) -> bool:
        """Export every queued span now; False if that took longer than ``timeout_ms``."""
        return self._processor.force_flush(timeout_ms)

    def shutdown(self) -> None:
        """Export what is queued (bounded by the export timeout) and stop the batch thread."""
        self._processor.shutdown()  # type: ignore[no-untyped-call]
