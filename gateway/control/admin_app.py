"""The admin API: routes, weights, enabled flags, reload, effective config, deploys.

Every request needs the bearer token (:mod:`gateway.control.auth`); a refused one changes
nothing. Route groups are factories of the plane in ``ROUTES``: another feature adds its own
group there (``PUT /admin/models/{m}/shadow``, say) and gets the token check, the error mapping
and ``actor(request)`` for its audit line with it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from gateway.config import ConfigError, GatewayConfig
from gateway.control import overlay
from gateway.control.auth import AdminToken, Refused
from gateway.control.deploys import deploy_routes
from gateway.control.plane import Actor, ControlPlane
from gateway.control.requests import actor, json_body
from gateway.control.store import StoreError
from gateway.control.views import model_view, models_view
from gateway.errors import GatewayError, InvalidInput, ModelNotFound, UnknownVariant, http_status
from gateway.http.asgi import Receive, Scope, Send
from gateway.http.errors import JSONResponse
from gateway.shadow.routes import shadow_routes

RouteFactory = Callable[[ControlPlane], APIRouter]


def reply(plane: ControlPlane, **fields: Any) -> dict[str, Any]:
    return {"config_version": plane.version.as_dict(), **fields}


def core_routes(plane: ControlPlane) -> APIRouter:
    router = APIRouter()

    @router.get("/admin/models")
    async def models() -> dict[str, Any]:
        return models_view(plane.config, plane.version, await plane.health())

    @router.get("/admin/models/{model}")
    async def model(model: str) -> dict[str, Any]:
        return model_view(plane.config, model, plane.version, await plane.health())

    async def patch_many(request: Request, model: str, changes: dict[str, Any]) -> None:
        def edit(document: dict[str, Any], current: GatewayConfig) -> None:
            if model not in current.models:
                raise ModelNotFound(f"unknown model {model!r}")
            names = [v.name for v in current.models[model].variants]
            for variant, fields in changes.items():
                if variant not in names:
                    known = ", ".join(names)
                    raise UnknownVariant(f"model {model!r} has no variant {variant!r} ({known})")
                overlay.patch_variant(document, model, variant, fields)

        what = f"PATCH {model} {orjson.dumps(changes).decode()}"
        await plane.change(edit, actor(request), what)

    def variants_reply(model: str, names: list[str]) -> dict[str, Any]:
        view = model_view(plane.config, model, plane.version, {})
        found = [v for v in view["variants"] if v["name"] in names]
        return reply(plane, model=model, variants=[{k: v[k] for k in _FIELDS} for v in found])

    @router.patch("/admin/models/{model}/variants/{variant}")
    async def patch(model: str, variant: str, request: Request) -> dict[str, Any]:
        await patch_many(request, model, {variant: await json_body(request)})
        answer = variants_reply(model, [variant])
        answer["variant"] = answer.pop("variants")[0]
        return answer

    @router.patch("/admin/models/{model}/variants")
    async def patch_several(model: str, request: Request) -> dict[str, Any]:
        """Several variants at once, as one change: ``{VARIANT: {"weight": N, ...}, ...}``."""
        changes = await json_body(request)
        if not isinstance(changes, dict) or not changes:
            raise InvalidInput('the body is {"VARIANT": {"weight": N, ...}, ...}')
        await patch_many(request, model, changes)
        return variants_reply(model, list(changes))

    @router.put("/admin/models/{model}")
    async def put(model: str, request: Request) -> dict[str, Any]:
        document = await json_body(request)
        if not isinstance(document, dict) or set(document) != {"variants"}:
            raise InvalidInput('the body is {"variants": [...]}, the model\'s whole variant list')

        def edit(target: dict[str, Any], current: GatewayConfig) -> None:
            overlay.replace_variants(target, model, document["variants"])

        await plane.change(edit, actor(request), f"PUT {model}")
        return reply(plane, model=model)

    @router.post("/admin/reload")
    async def reload(request: Request) -> dict[str, Any]:
        await plane.reload("POST /admin/reload", actor(request))
        return reply(plane)

    @router.get("/admin/config")
    async def config() -> dict[str, Any]:
        return reply(plane, config=plane.config.model_dump(mode="json"))

    return router


_FIELDS = ("name", "backend", "version", "weight", "share", "enabled", "labels")

ROUTES: list[RouteFactory] = [core_routes, deploy_routes, shadow_routes]
"""The admin API's route groups; add a feature's factory here."""


class AdminApp:
    """The token check in front of every request (unknown paths included), then the routes."""

    def __init__(self, plane: ControlPlane, token: AdminToken) -> None:
        self._token = token
        self._app = build_admin_app(plane)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        try:
            token_id = self._token.check(authorization)
        except Refused as error:
            extra = {"www-authenticate": "Bearer"} if error.status == 401 else None
            response = JSONResponse({"error": error.message}, error.status, headers=extra)
            await response(scope, receive, send)
            return
        client = scope.get("client")
        peer = f"{client[0]}:{client[1]}" if client else "unknown"
        scope.setdefault("state", {})["actor"] = Actor(token_id, peer)
        await self._app(scope, receive, send)


def build_admin_app(plane: ControlPlane) -> FastAPI:
    app = FastAPI(
        title="gateway admin",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        default_response_class=JSONResponse,
    )
    for factory in ROUTES:
        app.include_router(factory(plane))

    @app.exception_handler(GatewayError)
    async def gateway_error(request: Request, error: GatewayError) -> JSONResponse:
        return JSONResponse({"error": error.message}, status_code=http_status(error))

    @app.exception_handler(ConfigError)
    async def config_error(request: Request, error: ConfigError) -> JSONResponse:
        problems = [{"where": where, "reason": reason} for where, reason in error.problems]
        return JSONResponse({"error": str(error), "problems": problems}, status_code=400)

    @app.exception_handler(StoreError)
    async def store_error(request: Request, error: StoreError) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=500)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        message = error.detail if isinstance(error.detail, str) else str(error.detail)
        if error.status_code == 404:
            message = f"no such endpoint: {request.method} {request.url.path}"
        elif error.status_code == 405:
            message = f"method {request.method} not allowed on {request.url.path}"
        return JSONResponse({"error": message}, status_code=error.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=400)

    return app
