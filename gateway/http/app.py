"""The HTTP front end as one ASGI app: a raw-ASGI hot path for inference, FastAPI for the rest."""

from __future__ import annotations

import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import ORJSONResponse
from starlette.exceptions import HTTPException

from gateway.config import ServerConfig
from gateway.errors import GatewayError
from gateway.http.asgi import Receive, Scope, Send
from gateway.http.errors import error_response
from gateway.http.oip_infer import OipInferEndpoint
from gateway.http.oip_routes import oip_router
from gateway.service import InferenceService

INFER_PATH = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?/infer$")


def build_fastapi(service: InferenceService) -> FastAPI:
    app = FastAPI(
        title="gateway",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        default_response_class=ORJSONResponse,
    )
    app.include_router(oip_router(service))

    @app.exception_handler(GatewayError)
    async def gateway_error(request: Request, error: GatewayError) -> ORJSONResponse:
        status, _ = error_response(error)
        return ORJSONResponse({"error": error.message}, status_code=status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> ORJSONResponse:
        message = error.detail if isinstance(error.detail, str) else str(error.detail)
        if error.status_code == 404:
            message = f"no such endpoint: {request.method} {request.url.path}"
        elif error.status_code == 405:
            message = f"method {request.method} not allowed on {request.url.path}"
        return ORJSONResponse({"error": message}, status_code=error.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> ORJSONResponse:
        return ORJSONResponse({"error": str(error)}, status_code=400)

    return app


class HttpFrontEnd:
    """Dispatches inference straight to its endpoint; everything else goes through FastAPI."""

    def __init__(self, service: InferenceService, server: ServerConfig) -> None:
        self._infer = OipInferEndpoint(service, server)
        self._app = build_fastapi(service)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            match = INFER_PATH.match(scope["path"])
            if match is not None:
                await self._infer(scope, receive, send, match[1], match[2])
                return
        await self._app(scope, receive, send)
