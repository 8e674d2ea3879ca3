"""The gateway's OTLP encoding of its span records is the SDK's encoding of the same spans."""

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import SpanKind, StatusCode

from gateway.tracing.encode import CLIENT, SERVER, SpanEncoder, SpanRecord
from gateway.tracing.export import SCOPE, readable_span

RESOURCE = Resource.create({"service.name": "edge"})


def records() -> list[SpanRecord]:
    return [
        ("POST /v2/models/{model}/infer", SERVER, 0xABC, 0x1, 0x9, True,
         {"gateway.model": "m", "gateway.retries": 1, "gateway.shadow": True, "x": 1.5}, 10, 20,
         None),
        ("oip rest infer", CLIENT, 0xABC, 0x2, 0x1, False,
         {"gateway.attempt": 1, "gateway.shadow": False, "error.type": "BackendUnavailable",
          "negative": -3, "empty": "", "zero": 0, "big": 2**40, "name": "é"}, 12, 18, "refused"),
        ("error without a message", CLIENT, 0xABC, 0x4, 0x1, False, {"gateway.shadow": True},
         13, 17, ""),
        ("no parent", SERVER, 0xDEF, 0x3, None, False, {}, 1, 2, None),
    ]  # fmt: skip


def sdk_bytes(batch: list[SpanRecord]) -> bytes:
    return encode_spans([readable_span(r, RESOURCE) for r in batch]).SerializeToString()


def test_same_bytes_as_the_sdk_encoder():
    encoder = SpanEncoder(RESOURCE, SCOPE)
    ours = encoder.request(records())
    assert ours == sdk_bytes(records())
    # Twice: the second time from the caches of attributes and names.
    assert encoder.request(records()) == ours
    spans = ExportTraceServiceRequest.FromString(ours).resource_spans[0].scope_spans[0].spans
    assert [s.name for s in spans] == [r[0] for r in records()]
    assert spans[1].status.message == "refused"


def test_one_span_and_none():
    encoder = SpanEncoder(RESOURCE, SCOPE)
    for batch in (records()[-1:], []):
        assert encoder.request(batch) == sdk_bytes(batch)


def test_records_become_the_sdks_spans():
    server, client = (readable_span(r, RESOURCE) for r in records()[:2])
    assert server.kind is SpanKind.SERVER
    assert client.kind is SpanKind.CLIENT
    assert server.parent is not None
    assert server.parent.is_remote
    assert client.parent is not None
    assert client.parent.span_id == server.context.span_id
    assert client.status.status_code is StatusCode.ERROR
    assert client.status.description == "refused"
