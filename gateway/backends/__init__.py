"""Backend clients, one module per runtime and protocol, picked by name from ``BACKENDS``."""

from __future__ import annotations

import importlib
from typing import Any

from gateway.backends.base import Backend, BackendModel
from gateway.config import AnyBackendConfig

BACKENDS: dict[tuple[str, str], str] = {
    ("tfserving", "grpc"): "gateway.backends.tfserving_grpc:TFServingGrpcBackend",
    ("tfserving", "rest"): "gateway.backends.tfserving_rest:TFServingRestBackend",
    ("torchserve", "rest"): "gateway.backends.torchserve_rest:TorchServeRestBackend",
    ("torchserve", "grpc"): "gateway.backends.torchserve_grpc:TorchServeGrpcBackend",
    ("oip", "rest"): "gateway.backends.oip_rest:OipRestBackend",
}


def create_backend(
    name: str,
    config: AnyBackendConfig,
    max_message_bytes: int,
) -> Backend:
    module_name, _, class_name = BACKENDS[(config.kind, config.protocol)].partition(":")
    cls: Any = getattr(importlib.import_module(module_name), class_name)
    backend: Backend = cls(name, config, max_message_bytes)
    return backend


__all__ = ["BACKENDS", "Backend", "BackendModel", "create_backend"]
