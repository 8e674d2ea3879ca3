"""From the gateway's config and plain values to an :class:`Orchestrator` and its requests.

What the admin API and ``gateway deploy`` call: ``orchestrator(config, state_dir)`` makes one
runtime client per TorchServe and TF Serving backend, ``deploy_request(...)`` checks a deploy's
arguments (a JSON document's fields) and says which one is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.config import GatewayConfig, TFServingBackendConfig, TorchServeBackendConfig
from gateway.errors import InvalidInput
from gateway.runtimes.orchestrator import AnyRuntime, Orchestrator
from gateway.runtimes.results import DeployRequest, Target, TFServingTarget, TorchServeTarget
from gateway.runtimes.tfserving import TFServingRuntime
from gateway.runtimes.torchserve import TorchServeRuntime

DEFAULT_TIMEOUT_S = 120.0


def runtimes_for(
    config: GatewayConfig, state_dir: Path, timeout_s: float = DEFAULT_TIMEOUT_S
) -> dict[str, AnyRuntime]:
    """A client for every backend that can be deployed into, by backend name."""
    runtimes: dict[str, AnyRuntime] = {}
    for name, backend in config.backends.items():
        if isinstance(backend, TorchServeBackendConfig) and backend.management is not None:
            runtimes[name] = TorchServeRuntime(
                name, backend.management, backend.key_file, backend.connect_timeout_s, timeout_s
            )
        elif isinstance(backend, TFServingBackendConfig) and backend.grpc is not None:
            runtimes[name] = TFServingRuntime(
                name, backend.grpc, backend.model_config_file, state_dir, timeout_s
            )
    return runtimes


def orchestrator(
    config: GatewayConfig, state_dir: Path, timeout_s: float = DEFAULT_TIMEOUT_S
) -> Orchestrator:
    return Orchestrator(state_dir, runtimes_for(config, state_dir, timeout_s))


def _text(document: Mapping[str, Any], key: str, where: str, required: bool = False) -> str | None:
    value = document.get(key)
    if value is None and not required:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{where}.{key}: a non-empty string is required")
    return value


def _target(document: Any, where: str, kinds: Mapping[str, str]) -> Target:
    if not isinstance(document, dict):
        raise InvalidInput(f"{where}: an object is required")
    backend = _text(document, "backend", where, required=True)
    assert backend is not None
    kind = kinds.get(backend)
    if kind is None:
        known = ", ".join(sorted(kinds)) or "none"
        raise InvalidInput(f"{where}.backend: no runtime backend {backend!r} (known: {known})")
    model, variant = _text(document, "model", where), _text(document, "variant", where)
    allowed = {"backend", "model", "variant"}
    if kind == "torchserve":
        allowed |= {"archive", "initial_workers", "set_default"}
        workers = document.get("initial_workers", 1)
        if not isinstance(workers, int) or isinstance(workers, bool) or not 1 <= workers <= 64:
            raise InvalidInput(f"{where}.initial_workers: an integer from 1 to 64 is required")
        target: Target = TorchServeTarget(
            backend,
            _text(document, "archive", where, required=True) or "",
            model,
            workers,
            bool(document.get("set_default", False)),
            variant,
        )
    else:
        allowed |= {"base_path", "labels"}
        labels = document.get("labels", [])
        if not isinstance(labels, list) or not all(isinstance(x, str) and x for x in labels):
            raise InvalidInput(f"{where}.labels: a list of label names is required")
        target = TFServingTarget(
            backend, _text(document, "base_path", where), model, tuple(labels), variant
        )
    unknown = sorted(set(document) - allowed)
    if unknown:
        raise InvalidInput(f"{where}.{unknown[0]}: not a field of a {kind} deploy")
    return target


def deploy_request(
    config: GatewayConfig, model: str, version: str | int, targets: list[Any]
) -> DeployRequest:
    """A checked request: every target names a TorchServe or TF Serving backend of ``config``."""
    kinds = {
        name: backend.kind
        for name, backend in config.backends.items()
        if backend.kind in ("torchserve", "tfserving")
    }
    version = str(version)
    if not model or not version or not version.replace(".", "").replace("-", "").isalnum():
        raise InvalidInput("model and version are required (a version is letters and digits)")
    if not isinstance(targets, list) or not targets:
        raise InvalidInput("targets: at least one runtime to deploy into is required")
    checked = tuple(_target(doc, f"targets[{i}]", kinds) for i, doc in enumerate(targets))
    names = [target.backend for target in checked]
    if len(set(names)) != len(names):
        raise InvalidInput("targets: each backend may appear once")
    return DeployRequest(model, version, checked)
