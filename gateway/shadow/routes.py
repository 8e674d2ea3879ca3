"""The admin API's shadow routes, a route group of :mod:`gateway.control.admin_app`:

- ``PUT /admin/models/{m}/shadow``: the keys of the model's ``shadow`` section the body names
  (the rollout controller sends ``{"variants": [...], "percent": P}``; no variants turns it
  off), laid over what is in force and applied like every change (overlay, validation with key
  paths, every worker);
- ``GET /admin/models/{m}/shadow``: the settings in force;
- ``GET /admin/models/{m}/shadow/examples``: the most recent diverging (or failed) comparisons
  of every worker, newest first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from fastapi import APIRouter, Request

from gateway.config import GatewayConfig
from gateway.control import overlay
from gateway.control.requests import actor, json_body
from gateway.errors import InvalidInput, ModelNotFound
from gateway.shadow.admin import examples_doc, shadow_doc

if TYPE_CHECKING:
    from gateway.control.plane import ControlPlane


def shadow_routes(plane: ControlPlane) -> APIRouter:
    from gateway.control.admin_app import reply  # admin_app lists this group among its routes

    router = APIRouter()

    @router.put("/admin/models/{model}/shadow")
    async def put(model: str, request: Request) -> dict[str, Any]:
        body = await json_body(request)
        if not isinstance(body, dict):
            raise InvalidInput('the body is {"variants": [...], "percent": P, ...}')

        def edit(document: dict[str, Any], current: GatewayConfig) -> None:
            if model not in current.models:
                raise ModelNotFound(f"unknown model {model!r}")
            shadow = current.models[model].shadow
            settings = shadow.model_dump(mode="json", exclude_unset=True) if shadow else {}
            overlay.set_model_key(document, model, "shadow", {**settings, **body})

        what = f"PUT {model} shadow {orjson.dumps(body).decode()}"
        await plane.change(edit, actor(request), what)
        return reply(plane, shadow=shadow_doc(plane.config, model))

    @router.get("/admin/models/{model}/shadow")
    async def get(model: str) -> dict[str, Any]:
        return reply(plane, shadow=shadow_doc(plane.config, model))

    @router.get("/admin/models/{model}/shadow/examples")
    async def examples(model: str) -> dict[str, Any]:
        if model not in plane.config.models:
            raise ModelNotFound(f"unknown model {model!r}")
        return reply(plane, **examples_doc(model, await plane.workers.shadow_examples(model)))

    return router
