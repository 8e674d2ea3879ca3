"""The read-only parts of the TF Serving and TorchServe REST APIs: model status, metadata, ping."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.codecs.tfserving_status import metadata_json, status_json
from gateway.http.errors import JSONResponse
from gateway.service import InferenceService


def compat_router(service: InferenceService) -> APIRouter:
    router = APIRouter()

    async def tf_status(model: str, version: str | None, label: str | None) -> JSONResponse:
        return JSONResponse(status_json(service.version_readiness(model, version, label)))

    async def tf_metadata(model: str, version: str | None, label: str | None) -> JSONResponse:
        latest = service.latest_version(model, version, label)
        view = await service.model_view(model, latest)
        return JSONResponse(metadata_json(model, latest, view.metadata))

    @router.get("/v1/models/{model}")
    async def model_status(model: str) -> JSONResponse:
        return await tf_status(model, None, None)

    @router.get("/v1/models/{model}/versions/{version}")
    async def version_status(model: str, version: str) -> JSONResponse:
        return await tf_status(model, version, None)

    @router.get("/v1/models/{model}/labels/{label}")
    async def label_status(model: str, label: str) -> JSONResponse:
        return await tf_status(model, None, label)

    @router.get("/v1/models/{model}/metadata")
    async def model_metadata(model: str) -> JSONResponse:
        return await tf_metadata(model, None, None)

    @router.get("/v1/models/{model}/versions/{version}/metadata")
    async def version_metadata(model: str, version: str) -> JSONResponse:
        return await tf_metadata(model, version, None)

    @router.get("/v1/models/{model}/labels/{label}/metadata")
    async def label_metadata(model: str, label: str) -> JSONResponse:
        return await tf_metadata(model, None, label)

    @router.get("/ping")
    async def ping() -> JSONResponse:
        """TorchServe's health check: Healthy once every model has a ready variant."""
        if service.readiness.server_ready():
            return JSONResponse({"status": "Healthy"})
        return JSONResponse({"status": "Unhealthy"}, status_code=500)

    return router
