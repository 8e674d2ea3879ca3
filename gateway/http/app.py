"""The HTTP front end as one ASGI app: raw-ASGI hot paths for inference, FastAPI for the rest."""

from __future__ import annotations

import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from gateway.config import ServerConfig
from gateway.errors import GatewayError, Overloaded
from gateway.http.asgi import BodyBudget, Receive, Scope, Send
from gateway.http.compat_routes import compat_router
from gateway.http.endpoint import RawEndpoint
from gateway.http.errors import (
    TORCHSERVE_ROUTING_TYPES,
    JSONResponse,
    error_body,
    error_response,
    is_torchserve_path,
    torchserve_body,
    torchserve_error,
)
from gateway.http.metrics_endpoint import MetricsEndpoint
from gateway.http.oip_infer import OipInferEndpoint
from gateway.http.oip_routes import oip_router
from gateway.http.tfserving_rest import TFServingRestEndpoint
from gateway.http.torchserve_rest import TorchServeRestEndpoint
from gateway.limits import ConcurrencyLimit
from gateway.service import InferenceService

OIP_INFER = re.compile(r"^/v2/models/(?P<model>[^/]+)(?:/versions/(?P<version>[^/]+))?/infer$")
TF_PREDICT = re.compile(
    r"^/v1/models/(?P<model>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
    r":(?P<verb>predict|classify|regress)$"
)
TORCHSERVE_PREDICT = re.compile(r"^/predictions/(?P<model>[^/]+)(?:/(?P<version>[^/]+))?$")


def build_fastapi(service: InferenceService) -> FastAPI:
    app = FastAPI(
        title="gateway",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        default_response_class=JSONResponse,
    )
    app.include_router(oip_router(service))
    app.include_router(compat_router(service))

    @app.exception_handler(GatewayError)
    async def gateway_error(request: Request, error: GatewayError) -> Response:
        if is_torchserve_path(request.url.path):
            status, body = torchserve_error(error)
        else:
            status, body = error_response(error)
        headers = None
        if isinstance(error, Overloaded):
            headers = {"retry-after": str(error.retry_after_s)}
        return Response(body, status, headers=headers, media_type=JSONResponse.media_type)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        status = error.status_code
        message = error.detail if isinstance(error.detail, str) else str(error.detail)
        if status == 404:
            message = f"no such endpoint: {request.method} {request.url.path}"
        elif status == 405:
            message = f"method {request.method} not allowed on {request.url.path}"
        if is_torchserve_path(request.url.path):
            kind = TORCHSERVE_ROUTING_TYPES.get(status, "BadRequestException")
            body = torchserve_body(status, kind, message)
        else:
            body = error_body(message)
        return Response(body, status, media_type=JSONResponse.media_type)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=400)

    return app


class HttpFrontEnd:
    """Inference and ``/metrics`` go straight to their endpoints (first match wins); the rest goes
    to FastAPI."""

    def __init__(self, service: InferenceService, server: ServerConfig) -> None:
        self.body_budget = BodyBudget(server.body_buffer_bytes)
        self.concurrency = ConcurrencyLimit(
            server.limits.max_concurrent_requests, "HTTP", service.metrics.shed_one
        )
        shared = (server, self.body_budget, self.concurrency)
        self._routes: list[tuple[str, re.Pattern[str], RawEndpoint]] = [
            ("/v2/models/", OIP_INFER, OipInferEndpoint(service, *shared)),
            ("/v1/models/", TF_PREDICT, TFServingRestEndpoint(service, *shared)),
            ("/predictions/", TORCHSERVE_PREDICT, TorchServeRestEndpoint(service, *shared)),
        ]
        self._metrics = MetricsEndpoint(service.metrics.exposition)
        self._app = build_fastapi(service)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method: str = scope["method"]
            path: str = scope["path"]
            if method == "POST":
                for prefix, pattern, endpoint in self._routes:
                    if path.startswith(prefix):
                        match = pattern.match(path)
                        if match is not None:
                            await endpoint(scope, receive, send, match.groupdict())
                            return
            elif method == "GET" and path == "/metrics":
                await self._metrics(scope, receive, send)
                return
        await self._app(scope, receive, send)
