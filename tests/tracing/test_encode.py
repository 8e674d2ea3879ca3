"""The gateway's OTLP encoding is the SDK's, for the spans the gateway makes."""

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from gateway.tracing.encode import SpanEncoder
from gateway.tracing.export import SCOPE

RESOURCE = Resource.create({"service.name": "edge"})
SAMPLED = TraceFlags(TraceFlags.SAMPLED)


def spans() -> list[ReadableSpan]:
    server = SpanContext(0xABC, 0x1, False, SAMPLED)
    caller = SpanContext(0xABC, 0x9, True, SAMPLED)
    return [
        ReadableSpan(
            "POST /v2/models/{model}/infer", server, caller, RESOURCE,
            {"gateway.model": "m", "gateway.retries": 1, "gateway.shadow": True, "x": 1.5},
            kind=SpanKind.SERVER, start_time=10, end_time=20, instrumentation_scope=SCOPE,
        ),
        ReadableSpan(
            "oip rest infer", SpanContext(0xABC, 0x2, False, SAMPLED),
            SpanContext(0xABC, 0x1, False, SAMPLED), RESOURCE,
            {"gateway.attempt": 1, "gateway.shadow": False, "error.type": "BackendUnavailable",
             "negative": -3, "empty": "", "zero": 0, "big": 2**40, "name": "é"},
            kind=SpanKind.CLIENT, status=Status(StatusCode.ERROR, "refused"),
            start_time=12, end_time=18, instrumentation_scope=SCOPE,
        ),
        ReadableSpan(
            "error without a message", SpanContext(0xABC, 0x4, False, SAMPLED),
            SpanContext(0xABC, 0x1, False, SAMPLED), RESOURCE, {"gateway.shadow": True},
            kind=SpanKind.CLIENT, status=Status(StatusCode.ERROR),
            start_time=13, end_time=17, instrumentation_scope=SCOPE,
        ),
        ReadableSpan(
            "no parent", SpanContext(0xDEF, 0x3, False, SAMPLED), None, RESOURCE, {},
            kind=SpanKind.SERVER, start_time=1, end_time=2, instrumentation_scope=SCOPE,
        ),
    ]  # fmt: skip


def test_same_bytes_as_the_sdk_encoder():
    encoder = SpanEncoder(RESOURCE, SCOPE)
    sdk = encode_spans(spans())
    ours = encoder.request(spans())
    assert ExportTraceServiceRequest.FromString(ours) == sdk
    assert ours == sdk.SerializeToString()
    # Twice: the second time from the caches of attributes and names.
    assert encoder.request(spans()) == ours


def test_one_span_and_none():
    encoder = SpanEncoder(RESOURCE, SCOPE)
    for batch in (spans()[-1:], []):
        assert encoder.request(batch) == encode_spans(batch).SerializeToString()
