"""Clients that leave, dawdle or crowd, through a real gateway process over real sockets: a
client that disconnects cancels its backend call (HTTP and gRPC), slowloris connections are
closed and do not slow anyone else, and connections beyond the cap are refused."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from deploy.local.process import free_port
from gateway.wire import oip_pb2
from tests.integration.test_faults_and_metrics import samples, value
from tests.support.http import call
from tests.support.open_loop import percentile
from tests.support.slow_backend import SlowBackend, slow_backend
from tests.support.standalone import GatewayProcess, standalone_config

BODY = b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1,1],"data":[1.0]}]}'
SLOW_S = 3.0


@pytest.fixture
def backend() -> Iterator[SlowBackend]:
    with slow_backend(SLOW_S, 4) as running:
        yield running


def start_gateway(
    run_dir: Path, backend: SlowBackend, connections: int = 1, **server: Any
) -> GatewayProcess:
    config = standalone_config(f"http://127.0.0.1:{backend.port}", **server)
    config["backends"]["oip"]["max_connections"] = connections
    process = GatewayProcess(run_dir, config)
    process.start()
    process.wait_for("gateway ready")
    deadline = time.monotonic() + 30
    while call(process.url + "/v2/health/ready").status != 200:
        assert time.monotonic() < deadline, "the gateway never saw the slow backend ready"
        time.sleep(0.1)
    return process


def wait_until(condition: Any, timeout: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, what
        time.sleep(0.01)
    return time.monotonic() - started


def post_head(port: int, length: int = len(BODY)) -> bytes:
    return (
        b"POST /v2/models/m0/infer HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (port, length)
    )


def test_an_http_client_that_disconnects_cancels_its_backend_call(tmp_path, backend):
    process = start_gateway(tmp_path, backend)
    try:
        client = socket.create_connection(("127.0.0.1", process.port))
        client.sendall(post_head(process.port) + BODY)
        wait_until(lambda: backend.snapshot().running == 1, 5, "the call never reached it")
        client.close()
        seen = wait_until(lambda: backend.snapshot().abandoned == 1, 1, "no cancellation seen")
        # The one pooled connection (max_connections: 1) is free again: the next call runs now,
        # not after the abandoned one's 3 s.
        started = time.monotonic()
        assert call(process.url + "/v2/models/m0/infer", BODY).status == 200
        took = time.monotonic() - started
        found = samples(process.url)
    finally:
        process.stop()
    assert seen < 0.5
    assert took < SLOW_S + 1  # one call's worth, not two
    assert value(found, "gateway_requests_total", **closed_labels()) == 1
    assert "Traceback" not in process.log


def closed_labels() -> dict[str, str]:
    return {
        "model": "m0",
        "version": "1",
        "variant": "only",
        "backend": "oip",
        "runtime": "oip",
        "protocol": "oip_rest",
        "code": "499",
    }


def test_a_grpc_client_that_cancels_cancels_its_backend_call(tmp_path, backend):
    grpc_port = free_port()
    process = start_gateway(tmp_path, backend, grpc={"host": "127.0.0.1", "port": grpc_port})
    request = oip_pb2.ModelInferRequest(model_name="m0")
    tensor = request.inputs.add(name="x", datatype="FP32", shape=[1, 1])
    tensor.contents.fp32_contents.append(1.0)

    async def scenario() -> float:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            infer = channel.unary_unary(
                "/inference.GRPCInferenceService/ModelInfer",
                request_serializer=oip_pb2.ModelInferRequest.SerializeToString,
                response_deserializer=oip_pb2.ModelInferResponse.FromString,
            )
            pending = infer(request)
            running = lambda: backend.snapshot().running == 1  # noqa: E731
            await asyncio.to_thread(wait_until, running, 5, "the call never reached it")
            pending.cancel()
            abandoned = lambda: backend.snapshot().abandoned == 1  # noqa: E731
            return await asyncio.to_thread(wait_until, abandoned, 1, "no cancellation seen")

    try:
        seen = asyncio.run(scenario())
    finally:
        process.stop()
    assert seen < 0.5
    assert "Traceback" not in process.log


def test_slowloris_connections_are_closed_and_leave_normal_requests_fast(tmp_path):
    with slow_backend(0.0, 64) as fast:
        limits = {"request_headers_timeout_s": 2.0}
        process = start_gateway(tmp_path, fast, limits=limits)
        try:
            slow = [socket.create_connection(("127.0.0.1", process.port)) for _ in range(500)]
            for sock in slow:
                sock.sendall(b"POST /v2/models/m0/infer HTTP/1.1\r\nHost: x\r\n")
            started = time.monotonic()
            latencies = []
            while time.monotonic() - started < 1.5:  # within the header timeout
                for index, sock in enumerate(slow):
                    if index % 50 == 0:
                        sock.sendall(b"X-Drip: 1\r\n")  # still sending headers, slowly
                began = time.perf_counter()
                assert call(process.url + "/v2/models/m0/infer", BODY).status == 200
                latencies.append(time.perf_counter() - began)
            for sock in slow:
                sock.settimeout(3.0)
            closed = sum(_closed_by_peer(sock) for sock in slow)
            took = time.monotonic() - started
            found = samples(process.url)
        finally:
            for sock in slow:
                sock.close()
            process.stop()
    assert percentile(latencies, 0.99) < 0.05, percentile(latencies, 0.99)
    assert closed == 500
    assert took < 5
    shed = value(found, "gateway_shed_requests_total", backend="", limit="request_headers_timeout")
    assert shed == 500


def _read_response(sock: socket.socket) -> bytes:
    """One whole response (headers and its Content-Length body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(4096)
    return data


def _closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_connections_beyond_the_cap_are_closed_at_once(tmp_path, backend):
    process = start_gateway(tmp_path, backend, limits={"max_connections": 10})
    try:
        held = [socket.create_connection(("127.0.0.1", process.port)) for _ in range(10)]
        time.sleep(0.2)  # all ten accepted
        extra = socket.create_connection(("127.0.0.1", process.port))
        extra.settimeout(2)
        refused = _closed_by_peer(extra)
        extra.close()
        for sock in held:
            sock.close()
        time.sleep(0.2)
        after = call(process.url + "/v2/health/live").status
    finally:
        process.stop()
    assert refused
    assert after == 200


def test_a_slow_body_and_an_idle_keep_alive_connection_are_closed(tmp_path, backend):
    limits = {"request_body_timeout_s": 1.0, "idle_timeout_s": 1.0}
    process = start_gateway(tmp_path, backend, limits=limits)
    try:
        slow_body = socket.create_connection(("127.0.0.1", process.port))
        slow_body.sendall(post_head(process.port, 100) + b'{"inputs"')
        slow_body.settimeout(3)
        started = time.monotonic()
        body_closed = _closed_by_peer(slow_body)
        body_took = time.monotonic() - started
        slow_body.close()
        idle = socket.create_connection(("127.0.0.1", process.port))
        idle.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        idle.settimeout(3)
        assert _read_response(idle).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        idle_closed = _closed_by_peer(idle)
        idle_took = time.monotonic() - started
        idle.close()
        received = backend.snapshot().received
    finally:
        process.stop()
    assert body_closed
    assert 0.8 < body_took < 2.5
    assert idle_closed
    assert 0.8 < idle_took < 2.5
    assert received == 0  # the half-sent request never reached the backend


def test_past_the_workers_concurrent_requests_http_and_grpc_are_refused_and_probes_answer(
    tmp_path, backend
):
    grpc_port = free_port()
    process = start_gateway(
        tmp_path,
        backend,
        connections=2,
        grpc={"host": "127.0.0.1", "port": grpc_port},
        limits={"max_concurrent_requests": 1},
    )
    request = oip_pb2.ModelInferRequest(model_name="m0")
    tensor = request.inputs.add(name="x", datatype="FP32", shape=[1, 1])
    tensor.contents.fp32_contents.append(1.0)
    try:
        busy = socket.create_connection(("127.0.0.1", process.port))
        busy.sendall(post_head(process.port) + BODY)  # held by the 3 s backend
        wait_until(lambda: backend.snapshot().running == 1, 5, "the call never reached it")
        refused = call(process.url + "/v2/models/m0/infer", BODY)
        ready = call(process.url + "/v2/health/ready")
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            infer = channel.unary_unary(
                "/inference.GRPCInferenceService/ModelInfer",
                request_serializer=oip_pb2.ModelInferRequest.SerializeToString,
                response_deserializer=oip_pb2.ModelInferResponse.FromString,
            )
            pending = infer.future(request, timeout=10)  # holds gRPC's one place
            wait_until(lambda: backend.snapshot().running == 2, 5, "the gRPC call never ran")
            with pytest.raises(grpc.RpcError) as rpc:
                infer(request, timeout=5)
            assert pending.result().outputs
        busy.close()
    finally:
        process.stop()
    assert refused.status == 503
    assert refused.headers["retry-after"] == "1"
    assert "server.limits.max_concurrent_requests: 1" in refused.json()["error"]
    assert ready.status == 200
    assert rpc.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "server.limits.max_concurrent_requests: 1" in rpc.value.details()


def read_reply(client: socket.socket) -> bytes:
    client.settimeout(5)
    reply = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := client.recv(65536):
            reply += chunk
    return reply


def test_headers_over_the_limit_are_refused_before_they_are_held(tmp_path):
    with slow_backend(0.0, 4) as fast:
        process = start_gateway(tmp_path, fast, limits={"max_request_headers_kb": 8})
        try:
            # One header line that never ends, sent in pieces: refused once 8 KiB are in, the
            # connection closed, while the line is still incomplete.
            client = socket.create_connection(("127.0.0.1", process.port))
            client.sendall(post_head(process.port)[:-2] + b"X-Big: " + b"a" * 4096)
            time.sleep(0.05)
            client.sendall(b"a" * 6000)
            reply = read_reply(client)
            client.close()
            assert reply.startswith(b"HTTP/1.1 431 "), reply[:200]
            assert b"max_request_headers_kb" in reply
            # Headers within the limit and a body far larger than it, in one write: served.
            body = b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1,1],"data":[1.0]}]}'
            padded = body[:-1] + b" " * 200_000 + b"}"
            client = socket.create_connection(("127.0.0.1", process.port))
            head = post_head(process.port, len(padded))[:-2] + b"X-Ok: " + b"b" * 6000 + b"\r\n\r\n"
            client.sendall(head + padded)
            client.settimeout(5)
            served = client.recv(65536)
            client.close()
            assert served.startswith(b"HTTP/1.1 200 "), served[:300]
        finally:
            process.stop()
