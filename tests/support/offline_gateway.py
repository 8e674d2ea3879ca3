"""A gateway in this process with no backend to reach: it runs and answers, it is never ready.

For tests of the front ends' own behaviour (listeners, TLS, gRPC server options) that need no
model traffic.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from deploy.local.process import free_port
from gateway.app import Gateway
from gateway.config import parse_config


def offline_config(**server: Any) -> dict[str, Any]:
    """A gateway whose only backend is a closed port: it runs, it is never ready."""
    closed = f"http://127.0.0.1:{free_port()}"
    return {
        "server": {
            "http": {"host": "127.0.0.1", "port": 0},
            "grpc": {"host": "127.0.0.1", "port": 0},
            "admin": None,
            **server,
        },
        "backends": {
            "torchserve": {"kind": "torchserve", "inference": closed, "management": closed}
        },
        "models": {
            "digits": {
                "variants": [
                    {"name": "torch-v1", "backend": "torchserve", "version": 1, "weight": 1}
                ]
            }
        },
    }


@asynccontextmanager
async def running(config: dict[str, Any]) -> AsyncIterator[Gateway]:
    gateway = Gateway(parse_config(config))
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.stop()
