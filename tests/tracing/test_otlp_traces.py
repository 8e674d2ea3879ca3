"""Traces end to end: a real ``gateway serve`` exporting to a real OTLP/gRPC receiver, in front
of two small OIP backends (REST and gRPC) that record the trace context they are sent."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest

from deploy.local.process import free_port
from gateway.wire import oip_pb2 as oip
from tests.support.otlp import ReceivedSpan, Receiver, otlp_receiver
from tests.support.recording_backend import Recorded, grpc_backend, rest_backend
from tests.support.stack import gateway_config, running_gateway

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
BODY = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1.0, 2.0]}]}
SERVER, CLIENT = 2, 3  # OTLP Span.SpanKind
STATUS_ERROR = 2


class Stack:
    def __init__(
        self, url: str, grpc_port: int, receiver: Receiver, rest: Recorded, grpc: Recorded
    ) -> None:
        self.url = url
        self.grpc_target = f"127.0.0.1:{grpc_port}"
        self.receiver = receiver
        self.rest = rest
        self.grpc = grpc


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    run = tmp_path_factory.mktemp("traced")
    with (
        otlp_receiver() as (receiver, otlp_port),
        rest_backend() as (rest, rest_port),
        grpc_backend() as (grpc_recorded, grpc_port),
    ):
        config = traced_config(otlp_port, rest_port, grpc_port)
        with running_gateway(run, config) as url:
            yield Stack(url, config["server"]["grpc"]["port"], receiver, rest, grpc_recorded)


def traced_config(otlp_port: int, rest_port: int, grpc_port: int) -> dict[str, Any]:
    config = gateway_config(
        None,
        backends={
            "rest": {"kind": "oip", "url": f"http://127.0.0.1:{rest_port}", "runtime": "rec"},
            "grpc": {
                "kind": "oip",
                "grpc": f"127.0.0.1:{grpc_port}",
                "protocol": "grpc",
                "runtime": "rec-grpc",
            },
        },
        models={
            "m": {
                "variants": [
                    {"name": "rest-v1", "backend": "rest", "version": "1", "weight": 1},
                    {"name": "grpc-v1", "backend": "grpc", "version": "1", "weight": 0},
                ]
            },
            "s": {
                "variants": [
                    {
                        "name": "s-rest",
                        "backend": "rest",
                        "model": "m",
                        "version": "1",
                        "weight": 1,
                    },
                    {
                        "name": "s-grpc",
                        "backend": "grpc",
                        "model": "m",
                        "version": "1",
                        "weight": 0,
                    },
                ],
                "shadow": {"variants": ["s-grpc"], "percent": 100},
            },
            "r": {
                "variants": [
                    {
                        "name": "flaky-v1",
                        "backend": "rest",
                        "model": "flaky",
                        "version": "1",
                        "weight": 1,
                    },
                    {"name": "ok-v1", "backend": "rest", "model": "m", "version": "1", "weight": 1},
                ]
            },
        },
        grpc={"host": "127.0.0.1", "port": free_port()},
    )
    config["tracing"] = {
        "endpoint": f"http://127.0.0.1:{otlp_port}",
        "service_name": "edge",
        "schedule_delay_ms": 50,
        "ratio": 1.0,
    }
    return config


def traceparent(trace: str = CALLER_TRACE, span: str = CALLER_SPAN, flags: str = "01") -> str:
    return f"00-{trace}-{span}-{flags}"


def split(header: str) -> tuple[str, str, str]:
    version, trace, span, flags = header.split("-")
    assert version == "00"
    return trace, span, flags


def by_kind(spans: list[ReceivedSpan], kind: int) -> list[ReceivedSpan]:
    return [s for s in spans if s.kind == kind]


def test_http_request_joins_the_callers_trace_and_passes_it_on(stack: Stack) -> None:
    headers = {"traceparent": traceparent(), "tracestate": "vendor=opaque"}
    reply = httpx.post(f"{stack.url}/v2/models/m/infer", json=BODY, headers=headers)
    assert reply.status_code == 200, reply.text
    trace, server_span, flags = split(reply.headers["traceparent"])
    assert (trace, flags) == (CALLER_TRACE, "01")
    assert server_span != CALLER_SPAN

    sent = stack.rest.last()
    sent_trace, client_span, sent_flags = split(sent["traceparent"])
    assert (sent_trace, sent_flags) == (CALLER_TRACE, "01")
    assert client_span not in (CALLER_SPAN, server_span)
    assert sent["tracestate"] == "vendor=opaque"

    spans = stack.receiver.of_trace(CALLER_TRACE, 2)
    [server] = by_kind(spans, SERVER)
    [client] = by_kind(spans, CLIENT)
    assert server.service == client.service == "edge"
    assert (server.span_id, server.parent_span_id) == (server_span, CALLER_SPAN)
    assert (client.span_id, client.parent_span_id) == (client_span, server_span)
    assert server.name == "POST /v2/models/{model}/infer"
    assert server.attributes == {
        "http.request.method": "POST",
        "http.route": "/v2/models/{model}/infer",
        "url.path": "/v2/models/m/infer",
        "client.address": "127.0.0.1",
        "gateway.protocol": "oip_rest",
        "gateway.model": "m",
        "gateway.version": "1",
        "gateway.variant": "rest-v1",
        "gateway.backend": "rest",
        "gateway.runtime": "rec",
        "gateway.retries": 0,
        "gateway.shadow": False,
        "http.response.status_code": 200,
    }
    assert client.name == "oip rest infer"
    assert client.attributes == {
        "gateway.backend": "rest",
        "gateway.runtime": "rec",
        "gateway.variant": "rest-v1",
        "gateway.attempt": 1,
        "gateway.shadow": False,
    }
    assert server.start_ns <= client.start_ns <= client.end_ns <= server.end_ns


def test_grpc_call_joins_the_callers_trace_and_passes_it_on(stack: Stack) -> None:
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    request = oip.ModelInferRequest(model_name="m")
    tensor = request.inputs.add(name="x", datatype="FP32", shape=[1, 2])
    tensor.contents.fp32_contents.extend([1.0, 2.0])
    with grpc.insecure_channel(stack.grpc_target) as channel:
        infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        metadata = (("traceparent", traceparent(trace_id)), ("x-gateway-variant", "grpc-v1"))
        _, call = infer.with_call(request.SerializeToString(), metadata=metadata, timeout=10)
    returned = dict(call.initial_metadata())
    assert returned["x-gateway-variant"] == "grpc-v1"
    trace, server_span, flags = split(returned["traceparent"])
    assert (trace, flags) == (trace_id, "01")

    sent_trace, client_span, _ = split(stack.grpc.last()["traceparent"])
    assert sent_trace == trace_id

    spans = stack.receiver.of_trace(trace_id, 2)
    [server] = by_kind(spans, SERVER)
    [client] = by_kind(spans, CLIENT)
    assert server.name == "inference.GRPCInferenceService/ModelInfer"
    assert (server.span_id, server.parent_span_id) == (server_span, CALLER_SPAN)
    assert (client.span_id, client.parent_span_id) == (client_span, server_span)
    assert server.attributes["rpc.system"] == "grpc"
    assert server.attributes["rpc.grpc.status_code"] == 0
    assert server.attributes["gateway.variant"] == "grpc-v1"
    assert server.attributes["gateway.protocol"] == "oip_grpc"
    assert client.name == "oip grpc infer"
    assert client.attributes["gateway.runtime"] == "rec-grpc"


def test_a_request_without_traceparent_starts_a_trace(stack: Stack) -> None:
    reply = httpx.post(f"{stack.url}/v2/models/m/infer", json=BODY)
    assert reply.status_code == 200, reply.text
    trace, server_span, flags = split(reply.headers["traceparent"])
    assert flags == "01"  # ratio 1.0
    assert split(stack.rest.last()["traceparent"])[0] == trace
    assert "tracestate" not in stack.rest.last()
    [server] = by_kind(stack.receiver.of_trace(trace, 2), SERVER)
    assert server.parent_span_id == ""
    assert server.span_id == server_span


def test_an_unsampled_caller_is_followed_and_nothing_is_exported(stack: Stack) -> None:
    unsampled = "11111111111111111111111111111111"
    reply = httpx.post(
        f"{stack.url}/v2/models/m/infer",
        json=BODY,
        headers={"traceparent": traceparent(unsampled, flags="00")},
    )
    assert reply.status_code == 200
    assert split(reply.headers["traceparent"])[::2] == (unsampled, "00")
    assert split(stack.rest.last()["traceparent"])[::2] == (unsampled, "00")
    # A sampled request sent after it: once its spans are in, the unsampled one's would be too.
    marker = "22222222222222222222222222222222"
    httpx.post(
        f"{stack.url}/v2/models/m/infer", json=BODY, headers={"traceparent": traceparent(marker)}
    )
    spans = stack.receiver.of_trace(marker, 2)
    assert spans
    assert not [s for s in stack.receiver.spans if s.trace_id == unsampled]


def test_an_error_is_traced_as_one(stack: Stack) -> None:
    failing = "33333333333333333333333333333333"
    reply = httpx.post(
        f"{stack.url}/v2/models/m/infer",
        json=BODY,
        headers={"traceparent": traceparent(failing), "x-gateway-variant": "no-such-variant"},
    )
    assert 400 <= reply.status_code < 500
    assert split(reply.headers["traceparent"])[0] == failing
    [server] = stack.receiver.of_trace(failing, 1)
    assert server.kind == SERVER
    assert server.attributes["http.response.status_code"] == reply.status_code
    assert server.status_code != STATUS_ERROR  # a client's mistake is not the server's error


def test_an_invalid_traceparent_starts_a_new_trace(stack: Stack) -> None:
    bad = "00-" + "0" * 32 + "-" + CALLER_SPAN + "-01"  # an all-zero trace id is invalid
    reply = httpx.post(
        f"{stack.url}/v2/models/m/infer",
        json=BODY,
        headers={"traceparent": bad, "tracestate": "dropped=yes"},
    )
    trace, _, _ = split(reply.headers["traceparent"])
    assert trace != "0" * 32
    [server] = by_kind(stack.receiver.of_trace(trace, 2), SERVER)
    assert server.parent_span_id == ""
    assert "tracestate" not in stack.rest.last()


def test_a_retry_is_a_client_span_of_its_own(stack: Stack) -> None:
    # Half the requests try flaky-v1 first (503) and are retried on ok-v1; 20 requests all
    # avoiding it first has odds of one in a million.
    retried = []
    for index in range(20):
        trace_id = f"{index + 1:032x}"
        reply = httpx.post(
            f"{stack.url}/v2/models/r/infer",
            json=BODY,
            headers={"traceparent": traceparent(trace_id)},
        )
        assert reply.status_code == 200, reply.text
        assert reply.headers["x-gateway-variant"] == "ok-v1"
        spans = stack.receiver.of_trace(trace_id, 2)
        [server] = by_kind(spans, SERVER)
        if server.attributes["gateway.retries"] == 1:
            retried.append((server, by_kind(stack.receiver.of_trace(trace_id, 3), CLIENT)))
    assert retried
    server, clients = retried[0]
    first, second = sorted(clients, key=lambda span: span.attributes["gateway.attempt"])
    assert (first.attributes["gateway.variant"], second.attributes["gateway.variant"]) == (
        "flaky-v1", "ok-v1",
    )  # fmt: skip
    assert first.status_code == STATUS_ERROR
    assert first.attributes["error.type"] == "BackendUnavailable"
    assert second.status_code != STATUS_ERROR
    assert first.parent_span_id == second.parent_span_id == server.span_id
    assert server.attributes["gateway.variant"] == "ok-v1"


def test_a_shadow_call_is_a_client_span_of_the_request(stack: Stack) -> None:
    trace_id = "5" * 32
    reply = httpx.post(
        f"{stack.url}/v2/models/s/infer", json=BODY, headers={"traceparent": traceparent(trace_id)}
    )
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-gateway-variant"] == "s-rest"
    spans = stack.receiver.of_trace(trace_id, 3)
    [server] = by_kind(spans, SERVER)
    clients = {span.attributes["gateway.variant"]: span for span in by_kind(spans, CLIENT)}
    assert server.attributes["gateway.shadow"] is True
    assert clients["s-rest"].attributes["gateway.shadow"] is False
    assert clients["s-grpc"].attributes["gateway.shadow"] is True
    assert clients["s-grpc"].parent_span_id == server.span_id
    # the shadow backend got the context of its own client span
    sent_trace, sent_span, _ = split(stack.grpc.last()["traceparent"])
    assert (sent_trace, sent_span) == (trace_id, clients["s-grpc"].span_id)
