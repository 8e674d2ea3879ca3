"""Finished spans -> the OpenTelemetry SDK's batch processor -> its OTLP/gRPC exporter.

The request path builds the SDK's own span records (``ReadableSpan``) from what it measured and
hands them to ``BatchSpanProcessor.on_end``, which only queues them; the SDK's worker thread
encodes them (:mod:`gateway.tracing.encode`) and sends batches with the SDK's OTLP/gRPC
exporter. The SDK's ``Tracer.start_span`` is skipped on purpose: it costs about 30 us per span
(attribute validation under locks, a sampler call, context objects), and a request has two.

Imported only when tracing is on: a gateway without it never loads the SDK.
"""

from __future__ import annotations

import threading

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from gateway import __version__
from gateway.tracing.encode import GatewaySpanExporter
from gateway.tracing.settings import TraceSettings
from gateway.tracing.trace import Attributes, Trace

SCOPE = InstrumentationScope("gateway", __version__)
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_UNSET = Status(StatusCode.UNSET)
SHUTDOWN_S = 2.0
_FLAGS = {True: _SAMPLED, False: TraceFlags(TraceFlags.DEFAULT)}


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
            exporter,
            max_queue_size=settings.max_queue_size,
            schedule_delay_millis=settings.schedule_delay_ms,
            max_export_batch_size=settings.max_export_batch_size,
        )

    def server_span(
        self, trace: Trace, attributes: Attributes, end_ns: int, error: str | None
    ) -> None:
        """Queue the request's server span (its parent: the caller, if it sent a traceparent)."""
        parent = trace.parent
        remote = None
        if parent is not None:
            remote = SpanContext(parent.trace_id, parent.span_id, True, _FLAGS[parent.sampled])
        self._queue(
            trace.name, SpanKind.SERVER, self.context_of(trace), remote, attributes,
            trace.start_ns, end_ns, error,
        )  # fmt: skip

    def client_span(
        self,
        trace: Trace,
        name: str,
        span_id: int,
        attributes: Attributes,
        start_ns: int,
        end_ns: int,
        error: str | None,
    ) -> None:
        """Queue a backend call's span, a child of the request's server span."""
        context = SpanContext(trace.trace_id, span_id, False, _SAMPLED)
        self._queue(
            name, SpanKind.CLIENT, context, self.context_of(trace), attributes,
            start_ns, end_ns, error,
        )  # fmt: skip

    @staticmethod
    def context_of(trace: Trace) -> SpanContext:
        """The server span's context, made once per request (its client spans' parent)."""
        context = trace.context
        if context is None:
            context = trace.context = SpanContext(trace.trace_id, trace.span_id, False, _SAMPLED)
        return context

    def _queue(
        self,
        name: str,
        kind: SpanKind,
        context: SpanContext,
        parent: SpanContext | None,
        attributes: Attributes,
        start_ns: int,
        end_ns: int,
        error: str | None,
    ) -> None:
        status = _UNSET if error is None else Status(StatusCode.ERROR, error)
        span = ReadableSpan(
            name,
            context,
            parent,
            self.resource,
            attributes,
            kind=kind,
            status=status,
            start_time=start_ns,
            end_time=end_ns,
            instrumentation_scope=SCOPE,
        )
        self._processor.on_end(span)

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
