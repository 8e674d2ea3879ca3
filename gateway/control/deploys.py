"""``POST /admin/models/{m}/deploy`` and ``.../undeploy``: the runtime orchestrator
(:mod:`gateway.runtimes`) puts a version into TorchServe and TF Serving, then the plane adds its
variants at weight 0 (a deploy) or, before the runtimes unload it, takes them out (an undeploy,
refused while one of them still takes traffic)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request

from gateway.config import GatewayConfig
from gateway.control import overlay
from gateway.control.requests import actor, json_body
from gateway.errors import Conflict, InvalidInput
from gateway.http.errors import JSONResponse
from gateway.runtimes import setup
from gateway.runtimes.results import DeployRequest

if TYPE_CHECKING:
    from gateway.control.plane import ControlPlane


def _request(plane: ControlPlane, model: str, document: Any) -> tuple[DeployRequest, Path]:
    state_dir = plane.config.server.state_dir
    if state_dir is None:
        raise InvalidInput("deploys need server.state_dir (the journal and TF Serving's config)")
    if not isinstance(document, dict):
        raise InvalidInput('the body is {"version": V, "targets": [...]}')
    unknown = sorted(set(document) - {"version", "targets"})
    if unknown:
        raise InvalidInput(f"{unknown[0]}: not a field of a deploy (version, targets)")
    if document.get("version") in (None, ""):
        raise InvalidInput("version: required")
    request = setup.deploy_request(
        plane.config, model, document["version"], document.get("targets", [])
    )
    return request, Path(state_dir)


def _variants(current: GatewayConfig, model: str) -> list[dict[str, Any]]:
    if model not in current.models:
        return []
    return [v.model_dump(mode="json") for v in current.models[model].variants]


def deploy_routes(plane: ControlPlane) -> APIRouter:
    router = APIRouter()

    @router.post("/admin/models/{model}/deploy")
    async def deploy(model: str, request: Request) -> JSONResponse:
        deploy_request, state_dir = _request(plane, model, await json_body(request))
        deployer = setup.orchestrator(plane.config, state_dir)
        try:
            result = await deployer.deploy(deploy_request)
        finally:
            await deployer.close()
        body = {"result": result.as_dict()}
        if not result.ok:
            return JSONResponse({"error": result.message, **body}, 502)

        def edit(document: dict[str, Any], current: GatewayConfig) -> None:
            variants = _variants(current, model)
            names = {v["name"] for v in variants}
            added = [v for v in result.variants if v["name"] not in names]
            if added:
                overlay.replace_variants(document, model, variants + added)

        what = f"deploy {model} version {deploy_request.version}"
        version = await plane.change(edit, actor(request), what)
        return JSONResponse({"config_version": version.as_dict(), **body})

    @router.post("/admin/models/{model}/undeploy")
    async def undeploy(model: str, request: Request) -> JSONResponse:
        deploy_request, state_dir = _request(plane, model, await json_body(request))
        targets = {(t.backend, deploy_request.version) for t in deploy_request.targets}

        def edit(document: dict[str, Any], current: GatewayConfig) -> None:
            variants = _variants(current, model)
            leaving = [v for v in variants if (v["backend"], v["version"]) in targets]
            busy = [v["name"] for v in leaving if v["enabled"] and v["weight"] > 0]
            if busy:
                raise Conflict(
                    f"{', '.join(busy)} still take traffic: set their weight to 0 or disable "
                    "them first"
                )
            if leaving:
                overlay.replace_variants(document, model, [v for v in variants if v not in leaving])

        what = f"undeploy {model} version {deploy_request.version}"
        version = await plane.change(edit, actor(request), what)
        deployer = setup.orchestrator(plane.config, state_dir)
        try:
            result = await deployer.undeploy(deploy_request)
        finally:
            await deployer.close()
        body = {"config_version": version.as_dict(), "result": result.as_dict()}
        if not result.ok:
            return JSONResponse({"error": result.message, **body}, 502)
        return JSONResponse(body)

    return router
