"""A closed-loop gRPC load: N threads, each with its own channel, sending one serialized
``inference.GRPCInferenceService/ModelInfer`` request (1 MiB of raw tensor) for a fixed time."""

from __future__ import annotations

import statistics
import threading
import time

import grpc
import numpy as np
from tritonclient.grpc import service_pb2

from loadtests.benchmark.cases import BIG_BYTES, Summary

MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
OPTIONS = [("grpc.max_send_message_length", 1 << 26), ("grpc.max_receive_message_length", 1 << 26)]


def big_request(model: str) -> bytes:
    request = service_pb2.ModelInferRequest(model_name=model)
    tensor = request.inputs.add(name="input0", datatype="FP32", shape=[1, BIG_BYTES // 4])
    assert tensor.name == "input0"
    request.raw_input_contents.append(
        np.random.default_rng(0).random(BIG_BYTES // 4, dtype=np.float32).tobytes()
    )
    body: bytes = request.SerializeToString()
    return body


def run_grpc(target: str, body: bytes, threads: int, seconds: float) -> Summary:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker() -> None:
        nonlocal errors
        with grpc.insecure_channel(target, options=OPTIONS) as channel:
            call = channel.unary_unary(MODEL_INFER)
            mine: list[float] = []
            failed = 0
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    call(body, timeout=30)
                except grpc.RpcError:
                    failed += 1
                    continue
                mine.append((time.perf_counter() - started) * 1000)
        with lock:
            latencies.extend(mine)
            errors += failed

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    ordered = sorted(latencies) or [float("nan")]
    return Summary(
        len(latencies) / seconds,
        statistics.median(ordered),
        ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        errors,
    )
