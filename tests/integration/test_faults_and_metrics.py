"""Backend faults become 503/504 JSON errors quickly; metrics count what happened; the other
backend protocols (TF Serving REST, TorchServe gRPC) serve the same answers."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from deploy.local.process import free_port
from tests.support.faults import hung_server
from tests.support.http import DIGITS, call, infer, probabilities
from tests.support.stack import backends_config, gateway_config, running_gateway

pytestmark = pytest.mark.stack


def one_variant(backend: str, version: int = 1) -> dict:
    return {
        "digits": {
            "variants": [{"name": "only", "backend": backend, "version": version, "weight": 1}]
        }
    }


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A real TCP server that accepts connections and never answers."""
    with hung_server() as port:
        yield port


def test_backend_down_is_503(backends, tmp_path):
    dead = free_port()
    config = gateway_config(
        backends,
        models=one_variant("torchserve"),
        backends=backends_config(
            backends,
            torchserve={
                "inference": f"http://127.0.0.1:{dead}",
                "management": f"http://127.0.0.1:{dead}",
            },
        ),
    )
    with running_gateway(tmp_path, config, ready_path="/v2/health/live") as url:
        reply = infer(url, DIGITS.inputs[:1])
        assert reply.status == 503
        assert "backend 'torchserve' unreachable" in reply.json()["error"]
        assert reply.headers["x-gateway-variant"] == "only"
        assert call(url + "/v2/health/ready").status == 503
        assert call(url + "/v2/models/digits/ready").json()["ready"] is False


@pytest.mark.parametrize("backend", ["torchserve", "mlserver"])
@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_hung_backend_is_504_within_the_deadline(backends, tmp_path, blackhole, backend, protocol):
    if protocol == "rest":
        key = "inference" if backend == "torchserve" else "url"
        override = {key: f"http://127.0.0.1:{blackhole}", "protocol": "rest", "timeout_s": 1.0}
    else:
        override = {"grpc": f"127.0.0.1:{blackhole}", "protocol": "grpc", "timeout_s": 1.0}
    config = gateway_config(
        backends,
        models=one_variant(backend),
        backends=backends_config(backends, **{backend: override}),
    )
    with running_gateway(tmp_path, config, ready_path="/v2/health/live") as url:
        started = time.monotonic()
        reply = infer(url, DIGITS.inputs[:1])
        elapsed = time.monotonic() - started
        assert reply.status == 504
        assert reply.json()["error"] == f"backend {backend!r} did not answer within 1s"
        assert 0.9 < elapsed < 5


# A 50 us deadline: sent and timed out, or not sent at all (the deadline passed on the way to the
# backend, or the gateway already knows that a call to it takes longer). Each is a 504.
NOT_SENT_OR_TIMED_OUT = (
    r"backend 'torchserve' did not answer within 5e-05s"
    r"|the deadline passed before a call to backend 'torchserve' could be sent: not sent"
    r"|\d+(\.\d+)? ms left before the deadline, and a call to backend 'torchserve' takes about "
    r"\d+(\.\d+)? ms: not sent"
)


def test_real_backend_slower_than_the_client_deadline_is_504(gateway_url):
    """Triton's `timeout` parameter (microseconds) bounds the backend call; 50 us is too short.

    Over REST the deadline is exact; gRPC's own deadline timer has millisecond granularity, so a
    TF Serving gRPC call may still finish inside 50 us (hung gRPC backends are tested above).
    """
    for variant in ("torch-v1",):
        reply = call(
            gateway_url + "/v2/models/digits/infer",
            b'{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 64], "data": '
            + str(DIGITS.inputs[0].tolist()).encode()
            + b'}], "parameters": {"timeout": 50}}',
            {"x-gateway-variant": variant},
        )
        assert reply.status == 504, (variant, reply.body)
        assert re.fullmatch(NOT_SENT_OR_TIMED_OUT, reply.json()["error"]), reply.body


def samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = call(url + "/metrics").body.decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found, name, **labels) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_requests_latency_and_weights(gateway_url):
    before = samples(gateway_url)
    for _ in range(5):
        assert (
            infer(gateway_url, DIGITS.inputs[:1], **{"x-gateway-variant": "torch-v2"}).status == 200
        )
    assert infer(gateway_url, DIGITS.inputs[:1], "/v2/models/nope/infer").status == 404
    after = samples(gateway_url)
    ok = {
        "model": "digits",
        "version": "2",
        "variant": "torch-v2",
        "backend": "torchserve",
        "runtime": "torchserve",
        "protocol": "oip_rest",
    }
    assert (
        value(after, "gateway_requests_total", **ok, code="200")
        - value(before, "gateway_requests_total", **ok, code="200")
        == 5
    )
    unrouted = {
        "model": "",
        "version": "",
        "variant": "",
        "backend": "",
        "runtime": "",
        "protocol": "oip_rest",
        "code": "404",
    }
    assert (
        value(after, "gateway_requests_total", **unrouted)
        - value(before, "gateway_requests_total", **unrouted)
        == 1
    )
    count = "gateway_request_duration_seconds_count"
    assert value(after, count, **ok) - value(before, count, **ok) == 5
    upstream = {k: v for k, v in ok.items() if k != "protocol"}
    assert (
        value(after, "gateway_upstream_duration_seconds_count", **upstream)
        - value(before, "gateway_upstream_duration_seconds_count", **upstream)
        == 5
    )
    overhead = value(
        after,
        "gateway_overhead_seconds_count",
        backend="torchserve",
        runtime="torchserve",
        protocol="oip_rest",
    )
    assert overhead >= 5
    assert (
        value(
            after,
            "gateway_variant_weight",
            model="digits",
            variant="tf-v1",
            backend="tfserving",
            runtime="tfserving",
            version="1",
        )
        == 40
    )
    assert (
        value(
            after,
            "gateway_variant_ready",
            model="digits",
            variant="tf-v2",
            backend="tfserving",
            runtime="tfserving",
            version="2",
        )
        == 1
    )
    inflight = value(after, "gateway_inflight_requests", backend="torchserve", runtime="torchserve")
    assert inflight == 0


def test_other_backend_protocols_give_the_same_answers(backends, gateway_url, tmp_path):
    """TF Serving over REST and TorchServe over gRPC, against the default gRPC / REST pair."""
    config = gateway_config(
        backends,
        backends=backends_config(
            backends, tfserving={"protocol": "rest"}, torchserve={"protocol": "grpc"}
        ),
    )
    rows = DIGITS.inputs[:8]
    with running_gateway(tmp_path, config) as url:
        for variant in ("tf-v1", "torch-v1", "tf-v2", "torch-v2"):
            other = infer(url, rows, **{"x-gateway-variant": variant})
            default = infer(gateway_url, rows, **{"x-gateway-variant": variant})
            assert other.status == default.status == 200, other.body
            np.testing.assert_allclose(probabilities(other), probabilities(default), atol=1e-6)
        bad = infer(url, np.zeros((1, 63), dtype=np.float32), **{"x-gateway-variant": "torch-v1"})
        assert bad.status == 400, bad.body


def test_two_gateway_processes_agree_on_sticky_assignments(backends, gateway_url, tmp_path):
    """Stateless stickiness: a second replica sends every user to the same variant."""
    with running_gateway(tmp_path, gateway_config(backends)) as other:
        for user in range(30):
            headers = {"x-user-id": f"replica-user-{user}"}
            first = infer(gateway_url, DIGITS.inputs[:1], **headers).headers["x-gateway-variant"]
            second = infer(other, DIGITS.inputs[:1], **headers).headers["x-gateway-variant"]
            assert first == second
