"""Readiness under load: probes have their own lane, and a slow answer is not a failure.

The fault is real: every inference connection the backend client may open is held by a slow
inference call (and more wait behind them), and the probe must still get its answer.
"""

from __future__ import annotations

import asyncio
import time
from concurrent import futures
from typing import Any

import grpc
import numpy as np
import pytest
import uvloop

from gateway.backends import Backend, BackendModel, create_backend
from gateway.backends import oip_rest as oip_rest_module
from gateway.config import (
    OipBackendConfig,
    TFServingBackendConfig,
    TorchServeBackendConfig,
    parse_config,
)
from gateway.inference import InferRequest, Tensor
from gateway.metadata import MetadataCache
from gateway.readiness import UNHEALTHY_THRESHOLD, Readiness
from gateway.routing.router import Router
from gateway.wire import tensorflow_serving_pb2 as tfs
from tests.backends.hostile import Peer, serving

TARGET = BackendModel("m", "1")
SLOW_S = 3.0
READY = {
    "/v2/models/m/versions/1/ready": b"",
    "/v1/models/m/versions/1": b'{"model_version_status": [{"state": "AVAILABLE"}]}',
    "/models/m/1": b'[{"workers": [{"status": "READY"}]}]',
}


def slow_inference(peer: Peer) -> None:
    """Readiness answered at once; anything else after SLOW_S."""
    while (request := peer.request()) is not None:
        if request.path not in READY:
            time.sleep(SLOW_S)
        peer.reply(READY.get(request.path, b"{}"))


def request() -> InferRequest:
    return InferRequest("m", inputs=[Tensor("x", "FP32", np.ones((1, 4), dtype=np.float32))])


async def ready_while_saturated(backend: Backend, calls: int = 6) -> tuple[Any, float]:
    """ready() while ``calls`` inference calls hold (or wait for) every inference connection."""
    await backend.start()
    try:
        inference = [
            asyncio.create_task(backend.infer(TARGET, request(), SLOW_S + 2)) for _ in range(calls)
        ]
        await asyncio.sleep(0.3)  # all sent, or queued for a connection
        started = time.monotonic()
        ready = await backend.ready(TARGET)
        elapsed = time.monotonic() - started
        for task in inference:
            task.cancel()
        await asyncio.gather(*inference, return_exceptions=True)
        return ready, elapsed
    finally:
        await backend.close()


@pytest.mark.parametrize("kind", ["oip", "tfserving-rest", "torchserve-rest"])
def test_rest_probe_does_not_queue_behind_inference(kind):
    with serving(slow_inference) as server:
        config: Any
        if kind == "oip":
            config = OipBackendConfig(kind="oip", url=server.url, max_connections=2)
        elif kind == "tfserving-rest":
            config = TFServingBackendConfig(
                kind="tfserving", grpc=None, rest=server.url, protocol="rest", max_connections=2
            )
        else:
            config = TorchServeBackendConfig(
                kind="torchserve", inference=server.url, management=server.url, max_connections=2
            )
        ready, elapsed = uvloop.run(
            ready_while_saturated(create_backend(kind, config, 1 << 20, MetadataCache()))
        )
    assert ready is True
    assert elapsed < 1.5, elapsed  # not behind the first 3 s inference call


class _SlowPredict:
    """TF Serving's Predict taking SLOW_S; GetModelStatus at once."""

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        if details.method.endswith("/GetModelStatus"):
            reply = tfs.GetModelStatusResponse()
            reply.model_version_status.add(version=1, state=tfs.ModelVersionStatus.AVAILABLE)
            body = reply.SerializeToString()
            return grpc.unary_unary_rpc_method_handler(lambda request, context: body)

        def predict(request: bytes, context: grpc.ServicerContext) -> bytes:
            time.sleep(SLOW_S)
            return b""

        return grpc.unary_unary_rpc_method_handler(predict)


def test_grpc_probe_does_not_queue_behind_inference_streams():
    """The server takes two streams per connection: the inference connection is full."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=16),
        handlers=[_SlowPredict()],
        options=[("grpc.max_concurrent_streams", 2)],
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        config = TFServingBackendConfig(kind="tfserving", grpc=f"127.0.0.1:{port}", rest=None)
        backend = create_backend("tfserving", config, 1 << 20, MetadataCache())
        ready, elapsed = uvloop.run(ready_while_saturated(backend))
    finally:
        server.stop(0)
    assert ready is True
    assert elapsed < 1.5, elapsed


def test_slow_probes_are_misses_and_failures_count_at_once(monkeypatch):
    """Readiness over a real OIP backend whose ready endpoint answers, hangs or fails."""
    monkeypatch.setattr(oip_rest_module, "PROBE_TIMEOUT_S", 0.3)
    behaviour = {"ready": "200"}

    def script(peer: Peer) -> None:
        while peer.request() is not None:
            if behaviour["ready"] == "hang":
                time.sleep(1)
            status = "200 OK" if behaviour["ready"] == "200" else "503 Service Unavailable"
            peer.reply(b"", status)

    with serving(script) as server:
        config = parse_config(
            {
                "backends": {"oip": {"kind": "oip", "url": server.url}},
                "models": {"m": {"variants": [{"name": "a", "backend": "oip", "version": 1,
                                               "weight": 1}]}},
            }
        )  # fmt: skip
        backend = create_backend("oip", config.backends["oip"], 1 << 20, MetadataCache())
        router = Router.from_config(config, {"oip": backend})
        readiness = Readiness(router, interval_s=60)

        async def sweep(state: str) -> bool:
            behaviour["ready"] = state
            await readiness.probe()
            return readiness.server_ready()

        async def scenario() -> list[bool]:
            await backend.start()
            try:
                seen = [await sweep("200")]
                seen += [await sweep("hang") for _ in range(UNHEALTHY_THRESHOLD)]
                seen += [await sweep("200"), await sweep("hang"), await sweep("503")]
                return seen
            finally:
                await backend.close()

        seen = uvloop.run(scenario())
    misses = [True] * (UNHEALTHY_THRESHOLD - 1) + [False]
    assert seen == [True, *misses, True, True, False]


def test_a_probe_timeout_is_none_not_false():
    with serving(lambda peer: time.sleep(3)) as server:
        backend = create_backend(
            "oip", OipBackendConfig(kind="oip", url=server.url), 1 << 20, MetadataCache()
        )

        async def probe() -> Any:
            await backend.start()
            try:
                return await backend.ready(TARGET)
            finally:
                await backend.close()

        assert uvloop.run(probe()) is None
