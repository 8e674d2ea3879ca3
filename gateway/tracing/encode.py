"""OTLP protobuf bytes for the gateway's span records, in the SDK exporter's batch thread.

The SDK's encoder builds protobuf message objects for every span and every attribute (about
24 us for a server span); building ``KeyValue`` messages once and reusing them still left about
7 us. The wire format is simple enough to write directly: every piece that repeats (attribute
key-value pairs, span names, the resource and scope) is encoded once and cached as bytes, and a
span is a join of those with its ids and times. The request is sent as those bytes, without a
message object (an identity serializer on the exporter's channel). Same bytes as
``opentelemetry.exporter.otlp.proto.common.trace_encoder.encode_spans(...).SerializeToString()``
for these spans (``tests/tracing/test_encode.py``): one resource, one scope, no events, links or
trace state.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import grpc
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope as SdkScope

from gateway.tracing.trace import Attributes

SpanRecord = tuple[str, int, int, int, int | None, bool, Attributes, int, int, str | None]
"""A finished span as the request path leaves it: (name, OTLP kind, trace id, span id, parent
span id or None, whether the parent is remote, attributes, start ns, end ns, error message)."""
SERVER = 2  # OTLP's SPAN_KIND_SERVER
CLIENT = 3
STATUS_ERROR = 2

MAX_CACHED = 8192
"""Distinct (key, value) attributes and span names kept; past that the cache starts again."""
EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
_HAS_IS_REMOTE = 0x100  # SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
_IS_REMOTE = 0x200  # SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
_FIXED64 = struct.Struct("<Q").pack
_DOUBLE = struct.Struct("<d").pack
# Field tags (field number << 3 | wire type) of the messages written here.
_SPAN_TRACE_ID = b"\x0a\x10"  # Span.trace_id, 16 bytes
_SPAN_SPAN_ID = b"\x12\x08"  # Span.span_id, 8 bytes
_SPAN_PARENT_ID = b"\x22\x08"  # Span.parent_span_id, 8 bytes
_SPAN_START = b"\x39"  # Span.start_time_unix_nano, fixed64
_SPAN_END = b"\x41"  # Span.end_time_unix_nano, fixed64
_STATUS_UNSET = b"\x7a\x00"  # Span.status, an empty Status
_KIND = {SERVER: b"\x30\x02", CLIENT: b"\x30\x03"}  # Span.kind
_FLAGS = {
    False: b"\x85\x01" + _HAS_IS_REMOTE.to_bytes(4, "little"),
    True: b"\x85\x01" + (_HAS_IS_REMOTE | _IS_REMOTE).to_bytes(4, "little"),
}


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int64: two's complement, ten bytes
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return bytes((tag,)) + _varint(len(payload)) + payload


def _any_value(value: object) -> bytes:
    # AnyValue is a oneof: even a false, zero or empty value is written.
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _field(0x0A, value.encode())
    if isinstance(value, int):
        return b"\x18" + _varint(value)
    if isinstance(value, float):
        return b"\x21" + _DOUBLE(value)
    return _field(0x0A, str(value).encode())


def _key_value(key: str, value: object) -> bytes:
    return _field(0x0A, key.encode()) + _field(0x12, _any_value(value))


class SpanEncoder:
    def __init__(self, resource: Resource, scope: SdkScope) -> None:
        resource_bytes = b"".join(
            _field(0x0A, _key_value(k, v)) for k, v in resource.attributes.items()
        )
        scope_bytes = _field(0x0A, scope.name.encode()) if scope.name else b""
        if scope.version:
            scope_bytes += _field(0x12, scope.version.encode())
        self._resource = _field(0x0A, resource_bytes)  # ResourceSpans.resource
        self._scope = _field(0x0A, scope_bytes)  # ScopeSpans.scope
        self._attributes: dict[tuple[str, type, object], bytes] = {}
        self._names: dict[str, bytes] = {}

    def _attribute(self, key: str, value: object) -> bytes:
        """Span.attributes: one KeyValue field. The type is in the cache key: True == 1, and
        they are different attributes."""
        cache_key = (key, type(value), value)
        encoded = self._attributes.get(cache_key)
        if encoded is None:
            if len(self._attributes) >= MAX_CACHED:
                self._attributes.clear()
            encoded = self._attributes[cache_key] = _field(0x4A, _key_value(key, value))
        return encoded

    def _name(self, name: str) -> bytes:
        encoded = self._names.get(name)
        if encoded is None:
            if len(self._names) >= MAX_CACHED:
                self._names.clear()
            encoded = self._names[name] = _field(0x2A, name.encode())
        return encoded

    def span(self, record: SpanRecord) -> bytes:
        """One ``Span`` message, without its field tag and length."""
        name, kind, trace_id, span_id, parent_id, remote, attributes, start, end, error = record
        parts = [
            _SPAN_TRACE_ID,
            trace_id.to_bytes(16, "big"),
            _SPAN_SPAN_ID,
            span_id.to_bytes(8, "big"),
        ]
        if parent_id is not None:
            parts += (_SPAN_PARENT_ID, parent_id.to_bytes(8, "big"))
        parts += (self._name(name), _KIND[kind])
        if start:
            parts += (_SPAN_START, _FIXED64(start))
        if end:
            parts += (_SPAN_END, _FIXED64(end))
        attribute = self._attribute
        parts += [attribute(k, v) for k, v in attributes.items()]
        if error is None:
            parts.append(_STATUS_UNSET)
        else:
            message = _field(0x12, error.encode()) if error else b""
            parts.append(_field(0x7A, message + b"\x18" + _varint(STATUS_ERROR)))
        parts.append(_FLAGS[remote])
        return b"".join(parts)

    def request(self, spans: Sequence[SpanRecord]) -> bytes:
        """A serialized ``ExportTraceServiceRequest`` of ``spans``."""
        if not spans:
            return b""
        encoded = [self.span(s) for s in spans]
        scope_spans = self._scope + b"".join(
            [b"\x12" + _varint(len(e)) + e for e in encoded]  # ScopeSpans.spans
        )
        resource_spans = self._resource + _field(0x12, scope_spans)  # ResourceSpans.scope_spans
        return _field(0x0A, resource_spans)  # ExportTraceServiceRequest.resource_spans


class _BytesTraceService:
    """``TraceService/Export`` taking the request already serialized."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.Export = channel.unary_unary(
            EXPORT_METHOD,
            request_serializer=None,
            response_deserializer=ExportTraceServiceResponse.FromString,
        )


class GatewaySpanExporter(OTLPSpanExporter):
    """The SDK's OTLP/gRPC exporter (its channel, retries, headers and TLS from OTEL_*), with the
    encoding above for the one resource and scope the gateway's spans have. ``export`` takes
    :data:`SpanRecord` tuples, not ``ReadableSpan``s."""

    def __init__(
        self, resource: Resource, scope: SdkScope, endpoint: str, timeout: float | None
    ) -> None:
        super().__init__(endpoint=endpoint, timeout=timeout)
        self._encoder = SpanEncoder(resource, scope)
        self._stopped = False

    def _initialize_channel_and_stub(self) -> None:
        """The SDK's channel (also when it reconnects), with the Export call sending bytes."""
        super()._initialize_channel_and_stub()  # type: ignore[no-untyped-call]
        self._client = _BytesTraceService(self._channel)  # type: ignore[assignment]

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Once (a bounded stop may call it before the batch processor does)."""
        if not self._stopped:
            self._stopped = True
            super().shutdown(timeout_millis, **kwargs)

    def _translate_data(self, data: Sequence[SpanRecord]) -> bytes:  # type: ignore[override]
        return self._encoder.request(data)
