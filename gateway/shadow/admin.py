"""What the admin API shows of shadowing, as pure functions of the configuration and the
mirrors: the settings in force and the recent diverging examples (see :mod:`.routes`)."""

from __future__ import annotations

from typing import Any

from gateway.config import GatewayConfig
from gateway.errors import ModelNotFound
from gateway.shadow.mirror import RING_SIZE
from gateway.shadow.offload import Shadowing


def shadow_doc(config: GatewayConfig, model: str) -> dict[str, Any]:
    """The model's shadow settings as the admin API shows them (off: no variants)."""
    if model not in config.models:
        raise ModelNotFound(f"unknown model {model!r}")
    shadow = config.models[model].shadow
    if shadow is None:
        return {"model": model, "variants": [], "percent": 0.0}
    return {"model": model, **shadow.model_dump(mode="json")}


def worker_examples(mirror: Shadowing, model: str) -> list[dict[str, Any]]:
    """This worker's most recent diverging (or failed) shadow comparisons of ``model``, newest
    first."""
    return [example.to_json() for example in mirror.ring.recent(model)]


def examples_doc(
    model: str, per_worker: list[list[dict[str, Any]]], limit: int = RING_SIZE
) -> dict[str, Any]:
    """Every worker's examples as one list, newest first, at most ``limit``."""
    merged = sorted((e for found in per_worker for e in found), key=lambda e: -e["at"])
    return {"model": model, "examples": merged[:limit]}
