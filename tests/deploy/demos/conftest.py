from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from deploy.local.process import free_port
from deploy.local.stack import StackPorts
from tests.support.stack import gateway_config, running_gateway


@dataclass(frozen=True)
class Gateway:
    url: str
    http_port: int
    grpc_port: int


@pytest.fixture(scope="module")
def demo_gateway(
    backends: StackPorts, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """The demo's four-way split on the real backends, with its gRPC port (TF Serving's
    clients use it)."""
    grpc_port = free_port()
    config = gateway_config(backends, grpc={"host": "127.0.0.1", "port": grpc_port})
    with running_gateway(tmp_path_factory.mktemp("demo-gateway"), config) as url:
        yield Gateway(url, config["server"]["http"]["port"], grpc_port)
