"""The tracer and the backend-call hook in process, with the SDK's in-memory exporter."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import grpc
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from gateway.backends.base import Backend, BackendModel
from gateway.errors import BackendUnavailable
from gateway.metrics import RequestRecord
from gateway.routing.router import Variant
from gateway.tracing.calls import UNTRACED, backend_call
from gateway.tracing.context import OUTGOING, grpc_metadata
from gateway.tracing.export import SpanSink
from gateway.tracing.settings import TraceSettings
from gateway.tracing.tracer import RequestTracer

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@dataclass
class FakeBackendInfo:
    name: str = "ts"
    kind: str = "torchserve"
    protocol: str = "grpc"
    runtime: str = "torchserve"


VARIANT = Variant("digits", "torch-v1", cast(Backend, FakeBackendInfo()), BackendModel("d", "1"), 1)


def settings(parent_based: bool = True, ratio: float = 1.0) -> TraceSettings:
    return TraceSettings("http://unused:4317", parent_based, ratio, "test", None, None, 1, None)


@pytest.fixture(autouse=True)
def own_context() -> Iterator[None]:
    """An unsampled trace sets the context of the task that begins it; here that is the
    test's thread, so each test puts it back."""
    token = OUTGOING.set(None)
    yield
    OUTGOING.reset(token)


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def tracer(exporter: InMemorySpanExporter, chance: float = 0.5, **kw: Any) -> RequestTracer:
    return RequestTracer(settings(**kw), SpanSink(settings(**kw), exporter), lambda: chance)


def scope(*headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {
        "method": "POST",
        "path": "/v2/models/digits/infer",
        "headers": list(headers),
        "client": ("127.0.0.1", 5000),
    }


def finished(exporter: InMemorySpanExporter, tracer: RequestTracer, count: int) -> list[Any]:
    assert tracer.sink.flush()
    spans = exporter.get_finished_spans()
    assert len(spans) == count
    return list(spans)


def test_a_sampled_caller_gets_a_server_and_a_client_span(exporter):
    traced = tracer(exporter)
    record = RequestRecord("oip_rest", time.perf_counter())
    record.trace = traced.begin_http(scope((b"traceparent", CALLER.encode())), "/r", "oip_rest")
    record.variant, record.model = VARIANT, "digits"
    with backend_call(record, VARIANT):
        outgoing = OUTGOING.get()
        assert outgoing is not None
        sent = dict(grpc_metadata((("authorization", "Bearer k"),)) or ())
    assert OUTGOING.get() is None
    record.trace.end(record, 200)
    client, server = finished(exporter, traced, 2)
    assert server.kind is SpanKind.SERVER
    assert client.kind is SpanKind.CLIENT
    assert server.parent.span_id == 0x00F067AA0BA902B7
    assert server.parent.is_remote
    assert client.parent.span_id == server.context.span_id
    assert not client.parent.is_remote
    assert (
        sent["traceparent"] == f"00-{server.context.trace_id:032x}-{client.context.span_id:016x}-01"
    )
    assert sent["authorization"] == "Bearer k"
    assert outgoing.http == f"traceparent: {sent['traceparent']}\r\n".encode()
    assert server.attributes["gateway.runtime"] == "torchserve"
    assert server.attributes["http.response.status_code"] == 200


def test_unsampled_requests_make_no_span_data(exporter):
    traced = tracer(exporter, chance=0.5, ratio=0.1)  # 0.5 >= 0.1: a new trace is not sampled
    record = RequestRecord("oip_rest", time.perf_counter())
    trace = traced.begin_http(scope(), "/r", "oip_rest")
    record.trace = trace
    assert not trace.sampled
    assert trace.attributes is None
    assert trace.sink is None
    assert backend_call(record, VARIANT) is UNTRACED  # the context is the request's already
    assert OUTGOING.get() is trace
    sent = dict(grpc_metadata() or ())
    assert sent == {"traceparent": trace.traceparent}
    trace.end(record, 200)
    assert re.fullmatch("00-[0-9a-f]{32}-[0-9a-f]{16}-00", trace.traceparent)
    assert trace.header == trace.traceparent.encode()
    assert trace.http == f"traceparent: {trace.traceparent}\r\n".encode()
    assert trace.trace_id_hex == trace.traceparent[3:35]
    finished(exporter, traced, 0)


def test_an_unsampled_caller_keeps_its_trace_id_and_tracestate(exporter):
    traced = tracer(exporter)
    unsampled_caller = CALLER[:-2] + "00"
    headers = ((b"traceparent", unsampled_caller.encode()), (b"tracestate", b"k=v"))
    trace = traced.begin_http(scope(*headers), "/r", "oip_rest")
    assert not trace.sampled
    assert trace.trace_id_hex == CALLER[3:35]
    assert trace.traceparent[36:52] not in (CALLER[36:52], "0" * 16)  # a span id of its own
    assert trace.traceparent.endswith("-00")
    assert trace.tracestate == "k=v"
    assert trace.http == f"traceparent: {trace.traceparent}\r\ntracestate: k=v\r\n".encode()
    assert dict(grpc_metadata() or ()) == {"traceparent": trace.traceparent, "tracestate": "k=v"}
    record = RequestRecord("oip_rest", time.perf_counter())
    record.trace = trace
    with backend_call(record, VARIANT, shadow=True):  # a shadow call may run in another task
        assert OUTGOING.get() is trace
    finished(exporter, traced, 0)


def test_parent_based_follows_the_caller_and_ratio_decides_new_traces(exporter):
    unsampled_caller = CALLER[:-2] + "00"
    always = tracer(exporter, chance=0.0, ratio=1.0)
    assert not always.begin_http(
        scope((b"traceparent", unsampled_caller.encode())), "/", "p"
    ).sampled
    never = tracer(exporter, chance=0.99, ratio=0.5)
    assert never.begin_http(scope((b"traceparent", CALLER.encode())), "/", "p").sampled
    assert not never.begin_http(scope(), "/", "p").sampled
    ratio_only = tracer(exporter, chance=0.99, ratio=0.5, parent_based=False)
    assert not ratio_only.begin_http(scope((b"traceparent", CALLER.encode())), "/", "p").sampled


class FakeContext:
    """The one call of a gRPC servicer context the tracer makes."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self._metadata = metadata

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata


def test_a_new_trace_is_sampled_by_one_draw(exporter):
    draws = iter([0.05, 0.99, 0.99, 0.05])
    traced = RequestTracer(settings(ratio=0.1), SpanSink(settings(), exporter), lambda: next(draws))
    assert traced.begin_http(scope(), "/", "p").sampled  # 0.05 < 0.1, drawn once
    assert not traced.begin_http(scope(), "/", "p").sampled  # 0.99
    context = cast(grpc.aio.ServicerContext, FakeContext(()))
    assert not traced.begin_grpc(context, "s/M", "p").sampled  # 0.99
    assert traced.begin_grpc(context, "s/M", "p").sampled  # 0.05


def test_a_failed_call_is_an_error_span_and_retries_are_counted(exporter):
    traced = tracer(exporter)
    record = RequestRecord("oip_grpc", time.perf_counter())
    record.trace = traced.begin_http(scope(), "/r", "oip_grpc")
    record.variant = VARIANT
    with pytest.raises(BackendUnavailable), backend_call(record, VARIANT):
        raise BackendUnavailable("backend 'ts' refused the connection")
    with backend_call(record, VARIANT):
        pass
    with backend_call(record, VARIANT, shadow=True):
        pass
    record.trace.end(record, 200)
    first, second, shadow, server = finished(exporter, traced, 4)
    assert first.status.status_code is StatusCode.ERROR
    assert first.status.description == "backend 'ts' refused the connection"
    assert first.attributes["error.type"] == "BackendUnavailable"
    assert (first.attributes["gateway.attempt"], second.attributes["gateway.attempt"]) == (1, 2)
    assert shadow.attributes["gateway.shadow"] is True
    assert server.attributes["gateway.retries"] == 1
    assert server.attributes["gateway.shadow"] is True


def test_the_context_stays_with_its_task():
    record = RequestRecord("oip_rest", time.perf_counter())
    assert backend_call(record, VARIANT) is UNTRACED
    assert record.attempts == 1

    async def main() -> None:
        exporter = InMemorySpanExporter()
        traced = tracer(exporter)
        seen: list[object] = []

        async def one() -> None:
            rec = RequestRecord("oip_rest", time.perf_counter())
            rec.trace = traced.begin_http(scope(), "/r", "oip_rest")
            with backend_call(rec, VARIANT):
                await asyncio.sleep(0.01)
                outgoing = OUTGOING.get()
                assert outgoing is not None
                seen.append(outgoing.grpc[0][1][3:35] == rec.trace.trace_id_hex)

        async def unsampled() -> None:
            rec = RequestRecord("oip_rest", time.perf_counter())
            rec.trace = never.begin_http(scope(), "/r", "oip_rest")
            await asyncio.sleep(0.01)
            outgoing = OUTGOING.get()
            assert outgoing is not None
            seen.append(outgoing.grpc[0][1][3:35] == rec.trace.trace_id_hex)

        never = tracer(exporter, ratio=0.0)
        tasks = (one(), one(), one(), unsampled(), unsampled(), unsampled())
        await asyncio.gather(*tasks)
        assert seen == [True] * 6
        assert OUTGOING.get() is None  # what a request's task set ended with it

    asyncio.run(main())


class HangingExporter(SpanExporter):
    """A collector that never answers: export blocks until the exporter is shut down."""

    def __init__(self) -> None:
        self.stopped = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.stopped.wait(30)
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self.stopped.set()


def test_stopping_with_a_dead_collector_is_bounded():
    exporter = HangingExporter()
    sink = SpanSink(settings(), exporter)
    traced = RequestTracer(settings(), sink, lambda: 0.0)
    record = RequestRecord("oip_rest", time.perf_counter())
    record.trace = traced.begin_http(scope(), "/r", "oip_rest")
    record.trace.end(record, 200)
    started = time.monotonic()
    sink.shutdown(timeout_s=0.5)
    assert time.monotonic() - started < 2.0
    assert exporter.stopped.is_set()
