"""Request bodies over real sockets: the worker's budget of buffered bodies, compressed bodies
that are not one clean stream, and `Upgrade` requests (which used to hang)."""

from __future__ import annotations

import gzip
import http.client
import socket
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.faults import hung_server
from tests.support.http import Reply, call
from tests.support.standalone import GatewayProcess, standalone_config

MIB = 1 << 20
VALUES = 60_000
BODY = (
    b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, %d], "data": [' % VALUES
    + b",".join([b"0.00000000001"] * VALUES)
    + b"]}]}"
)  # 840 kB of body, 240 kB of tensor: within max_request_bytes either way


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    """A gateway whose backend never answers (each upload is held until its 4 s timeout)."""
    with hung_server() as port:
        config = standalone_config(
            f"http://127.0.0.1:{port}", max_request_bytes=MIB, max_buffered_request_bytes=2 * MIB
        )
        config["backends"]["oip"]["timeout_s"] = 4
        process = GatewayProcess(tmp_path, config)
        process.start()
        try:
            process.wait_for("gateway ready")
            yield process
        finally:
            process.stop()
    assert "Traceback" not in process.log


def post(url: str, body: bytes, **headers: str) -> Reply:
    return call(url, body, {"content-type": "application/json", **headers})


def inflight(url: str) -> float:
    text = call(url + "/metrics").body.decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "gateway_inflight_requests":
                return sample.value
    return 0.0


def chunked_post(port: int, path: str, body: bytes, chunk: int) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    parts = (body[i : i + chunk] for i in range(0, len(body), chunk))
    connection.request("POST", path, parts, {"content-type": "application/json"})
    response = connection.getresponse()
    status, payload = response.status, response.read()
    connection.close()
    return status, payload


def test_uploads_beyond_the_worker_budget_are_refused_at_once(gateway):
    infer = gateway.url + "/v2/models/m0/infer"
    with ThreadPoolExecutor(2) as pool:
        holders: list[Future[Reply]] = [pool.submit(post, infer, BODY) for _ in range(2)]
        deadline = time.monotonic() + 10
        while inflight(gateway.url) < 2:  # both bodies are held while the backend says nothing
            assert time.monotonic() < deadline, "the two uploads never reached the backend"
            time.sleep(0.05)
        refused = post(infer, BODY)
        status, chunked = chunked_post(gateway.port, "/v2/models/m0/infer", BODY, 64 * 1024)
        assert not any(holder.done() for holder in holders)  # answered while they are held
        assert refused.status == 503, refused.body
        assert "server.max_buffered_request_bytes" in refused.json()["error"]
        assert status == 503, chunked
        assert [holder.result().status for holder in holders] == [504, 504]
    # The budget is given back: the same upload is read again (and then routed: no such model).
    after = post(gateway.url + "/v2/models/nope/infer", BODY)
    assert after.status == 404, after.body


def test_gzip_with_data_after_its_end_is_400(gateway):
    doc = b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]}'
    for body, what in (
        (gzip.compress(doc) + b"trailing", "8 bytes after the end of its gzip stream"),
        (gzip.compress(doc) + gzip.compress(doc), "second gzip member"),
    ):
        reply = post(gateway.url + "/v2/models/m0/infer", body, **{"content-encoding": "gzip"})
        assert reply.status == 400
        assert what in reply.json()["error"]


def test_an_upgrade_request_with_a_body_is_answered_at_once(gateway):
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        body = b'{"inputs": []}'
        sock.sendall(
            b"POST /v2/models/m0/infer HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        reply = b""
        while chunk := sock.recv(65536):  # the gateway closes the connection after answering
            reply += chunk
    head, _, payload = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"connection: close" in head.lower()
    assert b"protocol upgrades are not supported" in payload
    assert call(gateway.url + "/v2/health/live").status == 200
    assert "Unsupported upgrade" not in gateway.log
