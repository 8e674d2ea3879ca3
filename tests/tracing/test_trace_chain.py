"""One trace across two traced gateways (an edge in front of a regional one, as in
test_oip_backend) and the real runtimes: every hop's span is the child of the one before."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.http import DIGITS, infer
from tests.support.otlp import Receiver, otlp_receiver
from tests.support.stack import backends_config, gateway_config, running_gateway

pytestmark = pytest.mark.stack

SERVER, CLIENT = 2, 3  # OTLP Span.SpanKind
CALLER_SPAN = "00f067aa0ba902b7"


def traced(config: dict[str, Any], otlp_port: int, service: str) -> dict[str, Any]:
    config["tracing"] = {
        "endpoint": f"http://127.0.0.1:{otlp_port}",
        "service_name": service,
        "schedule_delay_ms": 50,
    }
    return config


def only(variant: str, backend: str, model: str) -> dict[str, Any]:
    """A model served by one variant: version 1 of ``model`` on ``backend``."""
    config = {"name": variant, "backend": backend, "model": model, "version": 1, "weight": 1}
    return {"variants": [config]}


@pytest.fixture(scope="module")
def chain(backends, tmp_path_factory) -> Iterator[tuple[str, Receiver]]:
    with otlp_receiver() as (receiver, otlp_port):
        regional_models = {
            "tfd": only("tf-v1", "tfserving", "digits"),
            "ptd": only("torch-v1", "torchserve", "digits"),
        }
        regional_config = traced(
            gateway_config(backends, models=regional_models, backends=backends_config(backends)),
            otlp_port,
            "regional",
        )
        with running_gateway(tmp_path_factory.mktemp("regional"), regional_config) as regional:
            edge_models = {name: only(f"via-{name}", "regional", name) for name in regional_models}
            edge_config = traced(
                gateway_config(
                    backends,
                    models=edge_models,
                    backends={"regional": {"kind": "oip", "url": regional, "runtime": "gateway"}},
                ),
                otlp_port,
                "edge",
            )
            with running_gateway(tmp_path_factory.mktemp("edge"), edge_config) as edge:
                yield edge, receiver


@pytest.mark.parametrize(
    ("model", "runtime", "client_span"),
    [("tfd", "tfserving", "tfserving grpc infer"), ("ptd", "torchserve", "torchserve rest infer")],
)
def test_each_hop_is_the_child_of_the_one_before(chain, model, runtime, client_span):
    edge, receiver = chain
    trace_id = ("a1" if model == "tfd" else "b2") * 16
    reply = infer(
        edge, DIGITS.inputs[:2], f"/v2/models/{model}/infer",
        traceparent=f"00-{trace_id}-{CALLER_SPAN}-01",
    )  # fmt: skip
    assert reply.status == 200, reply.body
    assert reply.headers["traceparent"].split("-")[1] == trace_id

    spans = {(s.service, s.kind): s for s in receiver.of_trace(trace_id, 4)}
    edge_server, edge_client = spans["edge", SERVER], spans["edge", CLIENT]
    regional_server, regional_client = spans["regional", SERVER], spans["regional", CLIENT]
    assert edge_server.parent_span_id == CALLER_SPAN
    assert edge_client.parent_span_id == edge_server.span_id
    assert regional_server.parent_span_id == edge_client.span_id  # propagated by the edge
    assert regional_client.parent_span_id == regional_server.span_id
    assert edge_server.attributes["gateway.runtime"] == "gateway"
    assert regional_server.attributes["gateway.runtime"] == runtime
    assert regional_server.attributes["gateway.model"] == model
    assert regional_client.name == client_span
    # The regional gateway got the call after the edge made it and before its answer came back
    # (its span ends once its reply is written, which the edge may see a moment before that).
    assert edge_client.start_ns <= regional_server.start_ns <= edge_client.end_ns
