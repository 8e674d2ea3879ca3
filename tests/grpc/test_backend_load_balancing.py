"""``grpc_load_balancing``: a backend name with several addresses (a headless Service in front of
several replicas) gets every replica's share with ``round_robin``, one replica with
``pick_first``.

Two real gRPC servers answer TF Serving's ``ModelService/GetModelStatus`` on 127.0.0.1 and
127.0.0.2 and count the calls each receives. No DNS name here resolves to two addresses, so the
target lists both (``ipv4:a:p,b:p``), which gRPC resolves and balances exactly as it does the
A records of a headless Service; the config built around it skips only the ``host:port`` check.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import grpc
import pytest

from deploy.local.process import free_port
from gateway.backends import BackendModel, create_backend
from gateway.backends.tfserving_grpc import GET_MODEL_STATUS
from gateway.config import ConfigError, TFServingBackendConfig, parse_config
from gateway.metadata import MetadataCache
from gateway.wire import tensorflow_serving_pb2 as tfs

HOSTS = ("127.0.0.1", "127.0.0.2")
CALLS = 40


async def replica(host: str, port: int, calls: Counter[str]) -> grpc.aio.Server:
    async def status(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        calls[host] += 1
        available = tfs.ModelVersionStatus(version=1, state=tfs.ModelVersionStatus.State.AVAILABLE)
        return tfs.GetModelStatusResponse(model_version_status=[available]).SerializeToString()

    server = grpc.aio.server()
    service, method = GET_MODEL_STATUS.strip("/").split("/")
    handler = grpc.unary_unary_rpc_method_handler(status)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service, {method: handler}),)
    )
    server.add_insecure_port(f"{host}:{port}")
    await server.start()
    return server


@pytest.mark.parametrize("policy", ["round_robin", "pick_first"])
def test_calls_spread_over_every_address_only_with_round_robin(policy):
    port = free_port()
    config = TFServingBackendConfig.model_construct(
        kind="tfserving",
        grpc=f"ipv4:{HOSTS[0]}:{port},{HOSTS[1]}:{port}",
        rest=None,
        protocol="grpc",
        grpc_load_balancing=policy,
        timeout_s=5.0,
        max_connections=4,
        connect_timeout_s=1.0,
    )

    async def scenario() -> Counter[str]:
        calls: Counter[str] = Counter()
        servers = [await replica(host, port, calls) for host in HOSTS]
        backend = create_backend("tfserving", config, 4 * 1024 * 1024, MetadataCache())
        await backend.start()
        try:
            for _ in range(CALLS):
                assert await backend.ready(BackendModel("digits", "1"))
        finally:
            await backend.close()
            for server in servers:
                await server.stop(None)
        return calls

    calls = asyncio.run(scenario())
    assert sum(calls.values()) == CALLS
    if policy == "round_robin":
        assert set(calls) == set(HOSTS), calls
        assert min(calls.values()) >= CALLS // 4, calls
    else:
        assert len(calls) == 1, calls


def test_load_balancing_defaults_to_pick_first_and_refuses_unknown_policies():
    def backend(**extra: object) -> dict[str, object]:
        return {
            "backends": {"tf": {"kind": "tfserving", **extra}},
            "models": {
                "m": {"variants": [{"name": "a", "backend": "tf", "version": 1, "weight": 1}]}
            },
        }

    tf = parse_config(backend()).backends["tf"]
    assert isinstance(tf, TFServingBackendConfig)
    assert tf.grpc_load_balancing == "pick_first"
    with pytest.raises(ConfigError, match="grpc_load_balancing"):
        parse_config(backend(grpc_load_balancing="least_request"))
