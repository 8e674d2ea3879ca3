"""Open Inference Protocol REST: health, server and model metadata, readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from gateway import __version__
from gateway.http.errors import JSONResponse
from gateway.inference import TensorSpec
from gateway.service import InferenceService, ModelView

EXTENSIONS = ["binary_tensor_data"]


def _json(doc: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(doc, status_code=status)


def _tensors(specs: tuple[TensorSpec, ...]) -> list[dict[str, Any]]:
    return [{"name": s.name, "datatype": s.datatype, "shape": list(s.shape)} for s in specs]


def model_metadata_json(view: ModelView, service: InferenceService) -> dict[str, Any]:
    return {
        "name": view.name,
        "versions": view.versions,
        "platform": view.platform,
        "inputs": _tensors(view.metadata.inputs),
        "outputs": _tensors(view.metadata.outputs),
        # Beyond the protocol: where the gateway sends this model's traffic.
        "variants": [
            {
                "name": v.name,
                "version": v.version,
                "backend": v.backend.name,
                "runtime": v.backend.runtime,
                "weight": v.weight,
                "labels": list(v.labels),
                "ready": service.readiness.variant_ready(v),
            }
            for v in view.variants
        ],
    }


def oip_router(service: InferenceService) -> APIRouter:
    router = APIRouter()
    readiness = service.readiness

    @router.get("/v2/health/live")
    async def live() -> JSONResponse:
        return _json({"live": True})

    @router.get("/v2/health/ready")
    async def ready() -> JSONResponse:
        is_ready = readiness.server_ready()
        return _json({"ready": is_ready}, 200 if is_ready else 503)

    @router.get("/v2")
    async def server_metadata() -> JSONResponse:
        return _json({"name": "gateway", "version": __version__, "extensions": EXTENSIONS})

    @router.get("/v2/models/{model}")
    async def model_metadata(model: str) -> JSONResponse:
        return _json(model_metadata_json(await service.model_view(model), service))

    @router.get("/v2/models/{model}/versions/{version}")
    async def version_metadata(model: str, version: str) -> JSONResponse:
        return _json(model_metadata_json(await service.model_view(model, version), service))

    @router.get("/v2/models/{model}/ready")
    async def model_ready(model: str) -> JSONResponse:
        is_ready = service.model_ready(model)
        return _json({"name": model, "ready": is_ready}, 200 if is_ready else 503)

    @router.get("/v2/models/{model}/versions/{version}/ready")
    async def version_ready(model: str, version: str) -> JSONResponse:
        is_ready = service.model_ready(model, version)
        body = {"name": model, "version": version, "ready": is_ready}
        return _json(body, 200 if is_ready else 503)

    return router
