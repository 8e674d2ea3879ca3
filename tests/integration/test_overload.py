"""4x overload of a real slow backend (50 ms a request, 2 at once: 40 req/s) through a real
gateway process: what is shed, how fast, and what the backend did for nobody."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest

from deploy.local.process import free_port
from gateway.wire import oip_pb2
from tests.integration.test_faults_and_metrics import samples, value
from tests.support.http import call
from tests.support.open_loop import Outcome, percentile, run_open_loop
from tests.support.slow_backend import SlowBackend, slow_backend
from tests.support.standalone import GatewayProcess, standalone_config

DELAY_S, CONCURRENCY = 0.05, 2
CAPACITY = CONCURRENCY / DELAY_S  # requests/s the backend can serve
RATE, SECONDS = 4 * CAPACITY, 4.0
BODY = b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1,1],"data":[1.0]}]}'


@pytest.fixture
def backend() -> Iterator[SlowBackend]:
    with slow_backend(DELAY_S, CONCURRENCY) as running:
        yield running


def start_gateway(run_dir: Path, backend: SlowBackend, **oip: Any) -> GatewayProcess:
    config = standalone_config(f"http://127.0.0.1:{backend.port}")
    config["backends"]["oip"].update({"timeout_s": 1, **oip})
    process = GatewayProcess(run_dir, config)
    process.start()
    process.wait_for("gateway ready")
    deadline = time.monotonic() + 30
    while call(process.url + "/v2/health/ready").status != 200:
        assert time.monotonic() < deadline, "the gateway never saw the slow backend ready"
        time.sleep(0.1)
    return process


def served(outcomes: list[Outcome]) -> list[float]:
    return [o.seconds for o in outcomes if o.status == 200]


def test_with_the_advised_limits_excess_is_shed_at_once_and_goodput_holds(tmp_path, backend):
    limits = {
        "max_requests": CONCURRENCY,
        "max_pending_requests": CONCURRENCY,
        "adaptive_concurrency": False,
    }
    process = start_gateway(tmp_path, backend, max_connections=CONCURRENCY, circuit_breakers=limits)
    try:
        url = process.url + "/v2/models/m0/infer"
        unloaded_p99 = percentile(served(run_open_loop(url, BODY, 10, 2)), 0.99)
        before = backend.snapshot()
        outcomes = run_open_loop(url, BODY, RATE, SECONDS)
        after = backend.snapshot()
        shed = samples(process.url)
    finally:
        process.stop()
    ok = served(outcomes)
    refused = [o for o in outcomes if o.status == 503]
    assert len(ok) + len(refused) == len(outcomes), {o.status for o in outcomes}
    assert len(ok) >= 0.9 * CAPACITY * SECONDS, f"goodput {len(ok) / SECONDS:.1f} req/s"
    assert percentile(ok, 0.99) <= 3 * unloaded_p99, (percentile(ok, 0.99), unloaded_p99)
    # Client-side times on a shared machine: the median is the gateway's answer time.
    assert percentile([o.seconds for o in refused], 0.5) < 0.005
    assert {o.retry_after for o in refused} == {"1"}
    assert after.wasted == before.wasted, "the backend worked for requests nobody read"
    assert value(shed, "gateway_shed_requests_total", backend="oip", limit="max_pending_requests")
    assert "Traceback" not in process.log


def test_with_default_breakers_the_deadline_bounds_the_queue_and_goodput_holds(tmp_path, backend):
    """max_connections 2 and a 1 s timeout, as issue 9 measured: before, 4 req/s of 40 were
    served and the backend ran ~400 requests in 10 s whose callers had given up."""
    process = start_gateway(tmp_path, backend, max_connections=CONCURRENCY)
    try:
        before = backend.snapshot()
        outcomes = run_open_loop(process.url + "/v2/models/m0/infer", BODY, RATE, SECONDS)
        time.sleep(1)
        after = backend.snapshot()
    finally:
        process.stop()
    ok = served(outcomes)
    late = [o for o in outcomes if o.status == 504]
    assert len(ok) + len(late) == len(outcomes), {o.status for o in outcomes}
    assert len(ok) >= 0.5 * CAPACITY * SECONDS, f"goodput {len(ok) / SECONDS:.1f} req/s"
    wasted = after.wasted - before.wasted
    # Before: ten times as many as were served. A few remain: calls that were sent with enough
    # time left and still timed out (the machine is shared; the gateway's loop runs late).
    assert wasted <= 0.25 * len(ok), f"{wasted} requests run for nobody, {len(ok)} served"


def test_a_request_whose_deadline_cannot_cover_a_call_is_answered_at_once_and_never_sent(
    tmp_path, backend
):
    process = start_gateway(tmp_path, backend)
    try:
        url = process.url + "/v2/models/m0/infer"
        assert call(url, BODY).status == 200  # the fastest call is now ~50 ms
        short = json.loads(BODY)
        short["parameters"] = {"timeout": 20_000}  # Triton's parameter, in microseconds
        received = backend.snapshot().received
        started = time.perf_counter()
        reply = call(url, json.dumps(short).encode())
        took = time.perf_counter() - started
        assert backend.snapshot().received == received
    finally:
        process.stop()
    assert reply.status == 504
    assert "not sent" in reply.json()["error"]
    assert took < 0.02


def test_a_full_breaker_refuses_over_http_and_grpc_naming_the_limit(tmp_path):
    with slow_backend(1.0, 1) as one_at_a_time:
        grpc_port = free_port()
        config = standalone_config(
            f"http://127.0.0.1:{one_at_a_time.port}",
            grpc={"host": "127.0.0.1", "port": grpc_port},
        )
        config["backends"]["oip"]["circuit_breakers"] = {
            "max_requests": 1,
            "max_pending_requests": 0,
        }
        process = GatewayProcess(tmp_path, config)
        process.start()
        process.wait_for("gateway ready")
        url = process.url + "/v2/models/m0/infer"
        request = oip_pb2.ModelInferRequest(model_name="m0")
        tensor = request.inputs.add(name="x", datatype="FP32", shape=[1, 1])
        tensor.contents.fp32_contents.append(1.0)
        try:
            with ThreadPoolExecutor(1) as pool:
                busy = pool.submit(call, url, BODY)
                while one_at_a_time.snapshot().running < 1:
                    time.sleep(0.01)
                refused = call(url, BODY)
                with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
                    infer = channel.unary_unary(
                        "/inference.GRPCInferenceService/ModelInfer",
                        request_serializer=oip_pb2.ModelInferRequest.SerializeToString,
                        response_deserializer=oip_pb2.ModelInferResponse.FromString,
                    )
                    with pytest.raises(grpc.RpcError) as rpc:
                        infer(request, timeout=5)
                assert busy.result().status == 200
        finally:
            process.stop()
    assert refused.status == 503
    assert refused.headers["retry-after"] == "1"
    message = refused.json()["error"]
    assert "circuit_breakers.max_requests: 1" in message
    assert "circuit_breakers.max_pending_requests: 0" in message
    error = rpc.value
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "circuit_breakers.max_requests: 1" in error.details()
    assert ("grpc-retry-pushback-ms", "1000") in tuple(error.trailing_metadata())


def test_with_all_defaults_adaptive_concurrency_finds_the_backends_concurrency(tmp_path, backend):
    """All defaults (64 pooled connections into a backend that runs 2) and a 1 s timeout:
    fixed limits send 64 calls that queue 1.6 s inside the backend and all time out (issue 9:
    goodput 10%). The gradient controller, on by default, holds 4-6 in flight instead."""
    process = start_gateway(tmp_path, backend)
    try:
        seconds = 6.0
        before = backend.snapshot()
        outcomes = run_open_loop(process.url + "/v2/models/m0/infer", BODY, RATE, seconds)
        time.sleep(1)
        after = backend.snapshot()
        gauges = samples(process.url)
    finally:
        process.stop()
    ok = served(outcomes)
    wasted = after.wasted - before.wasted
    # Envoy's gradient controller stats: the limit found, the minimum at 3 in flight (one
    # service time, as the backend runs 2), the last interval's median, no wait of its own.
    limit = value(gauges, "gateway_adaptive_concurrency_limit", backend="oip")
    min_rtt = value(gauges, "gateway_adaptive_concurrency_min_rtt_seconds", backend="oip")
    sample = value(gauges, "gateway_adaptive_concurrency_sample_rtt_seconds", backend="oip")
    lag = value(gauges, "gateway_adaptive_concurrency_loop_lag_seconds", backend="oip")
    measuring = ("gateway_adaptive_concurrency_min_rtt_calculation_active", (("backend", "oip"),))
    assert 1 <= limit <= 8, gauges
    assert DELAY_S <= min_rtt <= 3 * DELAY_S, gauges
    assert DELAY_S <= sample <= 1.0, gauges
    assert 0 <= lag < DELAY_S / 10, gauges
    assert gauges[measuring] == 0
    statuses = Counter(o.status for o in outcomes)
    assert len(ok) >= 0.75 * CAPACITY * seconds, (
        f"goodput {len(ok) / seconds:.1f} req/s, {wasted=}, {statuses}, {after}"
    )
    assert wasted <= 0.25 * len(ok), f"{wasted} requests run for nobody, {len(ok)} served"
