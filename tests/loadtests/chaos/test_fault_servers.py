"""The fault servers over real sockets: each misbehaves exactly as its name says."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.local.process import ManagedProcess, free_port
from loadtests.chaos.client import TRANSPORT_ERROR, HttpClient, Reply
from loadtests.chaos.driver import open_loop, run
from loadtests.chaos.faults import fault_process
from loadtests.chaos.processes import get_json

BODY = b'{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 1], "data": [1]}]}'
PATH = "/v2/models/m/versions/3/infer"


@pytest.fixture
def start(tmp_path: Path) -> Iterator[object]:
    started: list[ManagedProcess] = []

    def start_fault(kind: str, **knobs: float) -> int:
        port = free_port()
        process = fault_process(tmp_path, kind, port, **knobs)  # type: ignore[arg-type]
        process.start()
        process.wait_ready(20)
        started.append(process)
        return port

    yield start_fault
    for process in started:
        process.stop()


def infer_many(port: int, count: int, rate: float, timeout_s: float = 10) -> list[Reply]:
    async def go() -> list[Reply]:
        client = HttpClient("127.0.0.1", port, timeout_s)

        async def send(index: int) -> tuple[Reply, str]:
            return await client.request("POST", PATH, BODY), ""

        samples = await open_loop(send, rate, count / rate)
        await client.close()
        return [Reply(s.status, {}, s.body, s.started, s.latency_s, s.error) for s in samples]

    return run(go())


def test_slow_runs_concurrency_at_a_time_and_answers_oip(start):
    port = start("slow", latency_ms=100, concurrency=2)
    began = time.monotonic()
    replies = infer_many(port, 6, 1000)  # all at once: three rounds of two
    took = time.monotonic() - began
    assert [r.status for r in replies] == [200] * 6
    assert 0.3 <= took < 0.6
    assert sorted(round(r.latency_s, 1) for r in replies) == [0.1, 0.1, 0.2, 0.2, 0.3, 0.3]
    stats = get_json(f"http://127.0.0.1:{port}/stats")
    assert stats["infer"] == 6
    assert stats["served"] == 6
    assert stats["max_active"] == 2


def test_slow_counts_work_for_clients_that_left(start):
    port = start("slow", latency_ms=300, concurrency=1)
    replies = infer_many(port, 2, 1000, timeout_s=0.1)  # both give up while queued or running
    assert [r.status for r in replies] == [TRANSPORT_ERROR] * 2
    time.sleep(0.8)
    stats = get_json(f"http://127.0.0.1:{port}/stats")
    assert stats["infer"] == 2
    assert stats["wasted"] == 2


def test_reset_answers_nothing_and_resets(start):
    port = start("reset")
    (reply,) = infer_many(port, 1, 1)
    assert reply.status == TRANSPORT_ERROR
    assert "ConnectionResetError" in reply.error or "IncompleteReadError" in reply.error


def test_hung_never_answers(start):
    port = start("hung")
    (reply,) = infer_many(port, 1, 1, timeout_s=0.5)
    assert reply.status == TRANSPORT_ERROR
    assert "TimeoutError" in reply.error
    assert reply.latency_s >= 0.49


def test_trickle_sends_a_byte_per_interval(start):
    port = start("trickle", interval_ms=10)
    (reply,) = infer_many(port, 1, 1)
    assert reply.status == 200
    assert reply.latency_s > 0.01 * 50  # the body is over 100 bytes
    assert b'"model_name": "m", "model_version": "3"' in _body(port)


def _body(port: int) -> bytes:
    async def go() -> bytes:
        client = HttpClient("127.0.0.1", port)
        reply = await client.request("POST", PATH, BODY)
        await client.close()
        return reply.body

    return asyncio.run(go())
