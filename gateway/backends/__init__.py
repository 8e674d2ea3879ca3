"""Backend clients, one module per runtime and protocol, picked by name from ``BACKENDS``."""

from __future__ import annotations

import importlib
from typing import Any

from gateway.backends.base import Backend, BackendModel
from gateway.config import AnyBackendConfig
from gateway.metadata import MetadataCache

BACKENDS: dict[tuple[str, str], str] = {
    ("tfserving", "grpc"): "gateway.backends.tfserving_grpc:TFServingGrpcBackend",
    ("tfserving", "rest"): "gateway.backends.tfserving_rest:TFServingRestBackend",
    ("torchserve", "rest"): "gateway.backends.torchserve_rest:TorchServeRestBackend",
    ("torchserve", "grpc"): "gateway.backends.torchserve_grpc:TorchServeGrpcBackend",
    ("oip", "rest"): "gateway.backends.oip_rest:OipRestBackend",
    ("oip", "grpc"): "gateway.backends.oip_grpc:OipGrpcBackend",
}


def create_backend(
    name: str,
    config: AnyBackendConfig,
    max_message_bytes: int,
    metadata: MetadataCache,
) -> Backend:
    """``max_message_bytes`` bounds what the backend sends and reads; ``metadata`` is the one
    metadata cache, for backends that type their replies with it."""
    module_name, _, class_name = BACKENDS[(config.kind, config.protocol)].partition(":")
    cls: Any = getattr(importlib.import_module(module_name), class_name)
    backend: Backend = cls(name, config, max_message_bytes, metadata)
    return backend


__all__ = ["BACKENDS", "Backend", "BackendModel", "create_backend"]
