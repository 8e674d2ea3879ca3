"""A gRPC backend whose server comes back gets a connected inference channel at once."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest

from deploy.local.process import free_port
from gateway.backends import create_backend
from gateway.backends.base import BackendModel
from gateway.backends.grpc_reconnect import Reconnects
from gateway.config import (
    OipBackendConfig,
    TFServingBackendConfig,
    TorchServeBackendConfig,
)
from gateway.errors import BackendError, BackendUnavailable
from gateway.inference import InferRequest, Tensor
from gateway.metadata import MetadataCache

TARGET = BackendModel("m", "1")


def configs(
    address: str,
) -> list[OipBackendConfig | TFServingBackendConfig | TorchServeBackendConfig]:
    return [
        OipBackendConfig(kind="oip", grpc=address, protocol="grpc", timeout_s=1),
        TFServingBackendConfig(kind="tfserving", grpc=address, rest=None, timeout_s=1),
        TorchServeBackendConfig(
            kind="torchserve", grpc=address, protocol="grpc", management=None, timeout_s=1
        ),
    ]


async def scenario(index: int) -> tuple[bool, bool]:
    port = free_port()
    address = f"127.0.0.1:{port}"
    backend = create_backend("b", configs(address)[index], 1 << 20, MetadataCache())
    assert isinstance(backend, Reconnects)
    await backend.start()
    server = grpc.aio.server()
    request = InferRequest("m", inputs=[Tensor("x", "FP32", np.ones((1, 2), np.float32))])
    try:
        with pytest.raises(BackendUnavailable):  # nothing listens: the channel fails
            await backend.infer(TARGET, request, 1.0)
        server.add_insecure_port(address)
        await server.start()  # back, with no service: reaching it is all that is checked
        replaced = await backend.reconnect()
        # The very next call reaches the server (UNIMPLEMENTED), with no backoff in the way.
        with pytest.raises(BackendError, match="UNIMPLEMENTED"):
            await backend.infer(TARGET, request, 1.0)
        again = await backend.reconnect()  # connected now: nothing to do
        return replaced, again
    finally:
        await backend.close()
        await server.stop(0)


@pytest.mark.parametrize("index", [0, 1, 2], ids=["oip", "tfserving", "torchserve"])
def test_a_channel_that_failed_is_replaced_by_a_connected_one(index):
    replaced, again = asyncio.run(scenario(index))
    assert replaced
    assert not again
