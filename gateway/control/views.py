"""Routes as the admin API shows them (and ``gateway routes --json`` prints them)."""

from __future__ import annotations

from typing import Any

from gateway.config import GatewayConfig
from gateway.control.workers import Health
from gateway.errors import ModelNotFound
from gateway.routing.table import ConfigVersion


def model_view(
    config: GatewayConfig,
    name: str,
    version: ConfigVersion,
    health: Health,
) -> dict[str, Any]:
    """``health`` lacks a variant (no worker answered): not ready, not ejected."""
    model = config.models.get(name)
    if model is None:
        raise ModelNotFound(f"unknown model {name!r}")
    total = sum(v.weight for v in model.variants if v.enabled)
    variants = []
    for v in model.variants:
        backend = config.backends[v.backend]
        variants.append(
            {
                "name": v.name,
                "backend": v.backend,
                "runtime": backend.runtime,
                "model": v.model or name,
                "version": v.version,
                "weight": v.weight,
                "share": round(v.weight / total, 4) if v.enabled and total else 0.0,
                "enabled": v.enabled,
                "labels": list(v.labels),
            }
        )
        ready, ejected = health.get(name, {}).get(v.name, (False, False))
        variants[-1] |= {"ready": ready, "ejected": ejected}
    return {"model": name, "config_version": version.as_dict(), "variants": variants}


def models_view(
    config: GatewayConfig,
    version: ConfigVersion,
    health: Health,
) -> dict[str, Any]:
    return {
        "config_version": version.as_dict(),
        "models": [model_view(config, name, version, health) for name in config.models],
    }
