"""``make demo``: bring the local stack up and send real digits through the gateway.

Prints, per variant: the share of traffic it took against its configured weight, latency
percentiles, and accuracy on the held-out digits; then whether sticky users stayed put, and a
first latency figure: each backend called directly versus through the gateway.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np

from deploy.local import stack
from deploy.local.process import http_ok
from gateway.backends.torchserve_keys import INFERENCE, bearer, parse_key_file
from gateway.config import (
    GatewayConfig,
    OipBackendConfig,
    TFServingBackendConfig,
    TorchServeBackendConfig,
    load_config,
)
from gateway.wire import oip_pb2, tensorflow_pb2
from gateway.wire import tensorflow_serving_pb2 as tfs
from model_store.digits import DigitsSet, load_test_set

USERS = 60


@dataclass
class VariantStats:
    latencies_ms: list[float] = field(default_factory=list)
    correct: int = 0

    def add(self, latency_ms: float, right: bool) -> None:
        self.latencies_ms.append(latency_ms)
        self.correct += right


def percentile(values: list[float], q: float) -> str:
    """``q``-th percentile in ms, formatted; ``-`` for a variant that took no request."""
    return f"{float(np.percentile(values, q)):.2f}" if values else "-"


def oip_body(row: np.ndarray) -> bytes:
    doc = {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 64], "data": row.tolist()}]
    }
    return json.dumps(doc).encode()


class Client:
    """One keep-alive HTTP connection, as a real client would hold."""

    def __init__(self, host: str, port: int) -> None:
        self._conn = http.client.HTTPConnection(host, port, timeout=30)

    def post(
        self, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        self._conn.request("POST", path, body, {"content-type": "application/json", **headers})
        response = self._conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()

    def close(self) -> None:
        self._conn.close()


def send_traffic(
    gateway: Client, digits: DigitsSet, requests: int, sticky_header: str
) -> tuple[dict[str, VariantStats], dict[str, set[str]], int]:
    """Every request from one of USERS users (half of the users send their id for stickiness)."""
    stats: dict[str, VariantStats] = defaultdict(VariantStats)
    seen_by_user: dict[str, set[str]] = defaultdict(set)
    failures = 0
    for i in range(requests):
        index = i % len(digits)
        user = f"user-{i % USERS}"
        headers = {sticky_header: user} if (i % USERS) % 2 == 0 else {}
        started = time.perf_counter()
        status, reply_headers, body = gateway.post(
            "/v2/models/digits/infer", oip_body(digits.inputs[index]), headers
        )
        latency_ms = (time.perf_counter() - started) * 1000
        if status != 200:
            failures += 1
            continue
        variant = reply_headers["x-gateway-variant"]
        probabilities = json.loads(body)["outputs"][0]["data"]
        stats[variant].add(latency_ms, int(np.argmax(probabilities)) == digits.labels[index])
        if headers:
            seen_by_user[user].add(variant)
    return stats, seen_by_user, failures


def time_calls(call: object, rounds: int) -> list[float]:
    assert callable(call)
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def inference_key(torchserve: TorchServeBackendConfig) -> dict[str, str]:
    """The header TorchServe's token authorization wants on inference (none if it is off)."""
    if torchserve.key_file is None:
        return {}
    keys = parse_key_file(Path(torchserve.key_file).read_bytes(), time.time()).keys
    return bearer(keys[INFERENCE].value) if INFERENCE in keys else {}


def paired_p50(
    direct: Callable[[], object], gateway: Client, body: bytes, variant: str, rounds: int
) -> tuple[float, float]:
    """Median ms of ``direct()`` and of the gateway's OIP endpoint pinned to ``variant``; the
    first of two rounds warms connections up and is discarded."""
    for _ in range(2):
        direct_ms = time_calls(direct, rounds)
        via_ms = time_calls(
            lambda: gateway.post("/v2/models/digits/infer", body, {"x-gateway-variant": variant}),
            rounds,
        )
    return statistics.median(direct_ms), statistics.median(via_ms)


def direct_vs_gateway(
    config: GatewayConfig, gateway: Client, digits: DigitsSet, rounds: int
) -> list[tuple[str, float, float]]:
    """p50 of the same request sent straight to each runtime and through the gateway (pinned)."""
    body = oip_body(digits.inputs[0])
    rows: list[tuple[str, float, float]] = []
    torchserve = config.backends["torchserve"]
    assert isinstance(torchserve, TorchServeBackendConfig)
    assert torchserve.inference is not None
    host, port = torchserve.inference.removeprefix("http://").split(":")
    direct = Client(host, int(port))
    auth = inference_key(torchserve)
    try:
        path = "/predictions/digits/1"
        p50s = paired_p50(lambda: direct.post(path, body, auth), gateway, body, "torch-v1", rounds)
        rows.append(("TorchServe REST", *p50s))
    finally:
        direct.close()
    tf = config.backends["tfserving"]
    assert isinstance(tf, TFServingBackendConfig)
    assert tf.grpc is not None
    request = tfs.PredictRequest()
    request.model_spec.name = "digits"
    request.model_spec.version.value = 1
    tensor = request.inputs["input"]
    tensor.dtype = tensorflow_pb2.DT_FLOAT
    tensor.tensor_shape.dim.add().size = 1
    tensor.tensor_shape.dim.add().size = 64
    tensor.tensor_content = digits.inputs[0:1].tobytes()
    with grpc.insecure_channel(tf.grpc) as channel:
        predict = channel.unary_unary(
            "/tensorflow.serving.PredictionService/Predict",
            request_serializer=tfs.PredictRequest.SerializeToString,
            response_deserializer=tfs.PredictResponse.FromString,
        )
        p50s = paired_p50(lambda: predict(request, timeout=10), gateway, body, "tf-v1", rounds)
        rows.append(("TF Serving gRPC", *p50s))
    mlserver = mlserver_variant(config)
    if mlserver is not None:
        rows.append(mlserver_direct_vs_gateway(config, mlserver, gateway, digits, rounds))
    return rows


def mlserver_variant(config: GatewayConfig) -> str | None:
    """A version-1 digits variant on MLServer over gRPC, if the config has one."""
    for variant in config.models["digits"].variants:
        backend = config.backends[variant.backend]
        if backend.runtime == "mlserver" and backend.protocol == "grpc" and variant.version == "1":
            return variant.name
    return None


def mlserver_direct_vs_gateway(
    config: GatewayConfig, variant: str, gateway: Client, digits: DigitsSet, rounds: int
) -> tuple[str, float, float]:
    """MLServer's own ModelInfer (raw contents) against the gateway's OIP JSON, pinned to it."""
    name = next(v.backend for v in config.models["digits"].variants if v.name == variant)
    backend = config.backends[name]
    assert isinstance(backend, OipBackendConfig)
    assert backend.grpc is not None
    request = oip_pb2.ModelInferRequest(model_name="digits", model_version="1")
    request.inputs.add(name="input", datatype="FP32", shape=[1, 64])
    request.raw_input_contents.append(digits.inputs[0:1].tobytes())
    body = oip_body(digits.inputs[0])
    with grpc.insecure_channel(backend.grpc) as channel:
        infer = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=oip_pb2.ModelInferRequest.SerializeToString,
            response_deserializer=oip_pb2.ModelInferResponse.FromString,
        )
        p50s = paired_p50(lambda: infer(request, timeout=10), gateway, body, variant, rounds)
        return ("MLServer gRPC", *p50s)


def report(
    config: GatewayConfig,
    stats: dict[str, VariantStats],
    seen_by_user: dict[str, set[str]],
    failures: int,
    latency_rows: list[tuple[str, float, float]],
) -> str:
    variants = config.models["digits"].variants
    total_weight = sum(v.weight for v in variants)
    total = sum(len(s.latencies_ms) for s in stats.values())
    lines = [
        f"{total} requests through the gateway ({failures} failed)",
        "",
        f"{'variant':<13}{'runtime':<12}{'version':>8}{'weight':>8}{'share':>8}"
        f"{'requests':>10}{'p50 ms':>8}{'p99 ms':>8}{'accuracy':>10}",
    ]
    for variant in variants:
        s = stats.get(variant.name, VariantStats())
        count = len(s.latencies_ms)
        runtime = config.backends[variant.backend].runtime
        accuracy = f"{s.correct / count:.3f}" if count else "-"
        lines.append(
            f"{variant.name:<13}{runtime:<12}{variant.version:>8}"
            f"{variant.weight / total_weight:>8.0%}{count / max(total, 1):>8.1%}{count:>10}"
            f"{percentile(s.latencies_ms, 50):>8}{percentile(s.latencies_ms, 99):>8}"
            f"{accuracy:>10}"
        )
    moved = sum(1 for variants_seen in seen_by_user.values() if len(variants_seen) > 1)
    lines += [
        "",
        f"sticky users: {len(seen_by_user)}, each always on one variant: {moved == 0}",
        "",
        f"{'backend':<18}{'direct p50 ms':>15}{'via gateway p50 ms':>20}{'added ms':>10}",
    ]
    for name, direct_ms, via_ms in latency_rows:
        lines.append(f"{name:<18}{direct_ms:>15.2f}{via_ms:>20.2f}{via_ms - direct_ms:>10.2f}")
    return "\n".join(lines)


def run(config: GatewayConfig, requests: int, rounds: int) -> str:
    digits = load_test_set()
    http = config.server.http
    gateway = Client(http.host, http.port)
    try:
        stats, seen_by_user, failures = send_traffic(
            gateway, digits, requests, config.server.sticky_header
        )
        latency_rows = direct_vs_gateway(config, gateway, digits, rounds)
    finally:
        gateway.close()
    return report(config, stats, seen_by_user, failures, latency_rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deploy.local.demo")
    parser.add_argument("--config", type=Path, default=stack.REPO / "deploy/local/gateway.yaml")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=200, help="latency samples per backend")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    http = config.server.http
    stack_is_up = http_ok(f"http://{http.host}:{http.port}/v2/health/ready")
    if not stack_is_up and stack.up(args.config) != 0:
        return 1
    print()
    print(run(config, args.requests, args.rounds))
    url = f"http://{http.host}:{http.port}/v2/models/digits"
    print(f"\nthe stack stays up: try `curl {url}`; `make down` stops it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
