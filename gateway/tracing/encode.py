"""OTLP protobuf for the gateway's spans, in the SDK exporter's batch thread.

The SDK's encoder builds every attribute's ``KeyValue`` anew for every span, most of its cost
(about 24 us for a server span); the gateway's attributes repeat (the same models, variants,
backends and routes), so their messages are built once and reused (about 7 us). Same output as
``opentelemetry.exporter.otlp.proto.common.trace_encoder.encode_spans`` for these spans: one
resource, one scope, no events, links or trace state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as PbResource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope as SdkScope
from opentelemetry.trace import StatusCode

MAX_CACHED = 8192
"""Distinct (key, value) attribute messages kept; past that the cache starts again."""
_HAS_IS_REMOTE = 0x100  # SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
_IS_REMOTE = 0x200  # SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
_UNSET = Status()


def _value(value: object) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=str(value))


class SpanEncoder:
    def __init__(self, resource: Resource, scope: SdkScope) -> None:
        self._resource = PbResource(
            attributes=[KeyValue(key=k, value=_value(v)) for k, v in resource.attributes.items()]
        )
        self._scope = InstrumentationScope(name=scope.name, version=scope.version or "")
        self._cache: dict[tuple[str, type, object], KeyValue] = {}

    def _attribute(self, key: str, value: object) -> KeyValue:
        # The type is in the key: True == 1, and they are different attributes.
        cache_key = (key, type(value), value)
        encoded = self._cache.get(cache_key)
        if encoded is None:
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            encoded = self._cache[cache_key] = KeyValue(key=key, value=_value(value))
        return encoded

    def span(self, span: ReadableSpan) -> Span:
        context = span.context
        assert context is not None
        parent = span.parent
        flags = _HAS_IS_REMOTE
        if parent is not None and parent.is_remote:
            flags |= _IS_REMOTE
        attribute = self._attribute
        status = span.status
        fields: dict[str, Any] = {}
        if parent is not None:
            fields["parent_span_id"] = parent.span_id.to_bytes(8, "big")
        return Span(
            trace_id=context.trace_id.to_bytes(16, "big"),
            span_id=context.span_id.to_bytes(8, "big"),
            name=span.name,
            kind=span.kind.value + 1,  # type: ignore[arg-type]  # SDK INTERNAL is 0, OTLP's 1
            start_time_unix_nano=span.start_time or 0,
            end_time_unix_nano=span.end_time or 0,
            attributes=[attribute(k, v) for k, v in (span.attributes or {}).items()],
            status=(
                _UNSET
                if status.status_code is StatusCode.UNSET
                else Status(code=status.status_code.value, message=status.description or "")
            ),
            flags=flags,
            **fields,
        )

    def request(self, spans: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
        scope_spans = ScopeSpans(scope=self._scope, spans=[self.span(s) for s in spans])
        return ExportTraceServiceRequest(
            resource_spans=[ResourceSpans(resource=self._resource, scope_spans=[scope_spans])]
        )


class GatewaySpanExporter(OTLPSpanExporter):
    """The SDK's OTLP/gRPC exporter (its channel, retries, headers and TLS from OTEL_*), with the
    encoding above for the one resource and scope the gateway's spans have."""

    def __init__(
        self, resource: Resource, scope: SdkScope, endpoint: str, timeout: float | None
    ) -> None:
        super().__init__(endpoint=endpoint, timeout=timeout)
        self._encoder = SpanEncoder(resource, scope)
        self._stopped = False

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Once (a bounded stop may call it before the batch processor does)."""
        if not self._stopped:
            self._stopped = True
            super().shutdown(timeout_millis, **kwargs)

    def _translate_data(self, data: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
        return self._encoder.request(data)
