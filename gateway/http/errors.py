"""Gateway errors as HTTP responses: the status from ``gateway.errors.HTTP_STATUS``, and the body
in the protocol of the endpoint: ``{"error": "..."}`` (Open Inference Protocol, TF Serving), or
TorchServe's ``{"code": 404, "type": "...", "message": "..."}`` under its API's paths."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from gateway import media_types
from gateway.errors import ErrorCode, GatewayError, http_status

# The exception names TorchServe puts in "type", for clients that look at them.
TORCHSERVE_TYPES = {
    ErrorCode.INVALID_ARGUMENT: "BadRequestException",
    ErrorCode.NOT_FOUND: "ModelNotFoundException",
    ErrorCode.CONFLICT: "ConflictStatusException",
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: "BadRequestException",
    ErrorCode.PAYLOAD_TOO_LARGE: "BadRequestException",
    ErrorCode.NOT_READY: "ServiceUnavailableException",
    ErrorCode.BAD_UPSTREAM: "InternalServerException",
    ErrorCode.UPSTREAM_UNAVAILABLE: "ServiceUnavailableException",
    ErrorCode.UPSTREAM_TIMEOUT: "RequestTimeoutException",
    ErrorCode.OVERLOADED: "ServiceUnavailableException",
    ErrorCode.INTERNAL: "InternalServerException",
}
# What TorchServe says for a path or method its API does not have.
TORCHSERVE_ROUTING_TYPES = {404: "ResourceNotFoundException", 405: "MethodNotAllowedException"}


def is_torchserve_path(path: str) -> bool:
    """Whether ``path`` is in TorchServe's inference API (``/predictions/...``, ``/ping``)."""
    return path == "/ping" or path == "/predictions" or path.startswith("/predictions/")


def torchserve_body(status: int, error_type: str, message: str) -> bytes:
    return orjson.dumps({"code": status, "type": error_type, "message": message})


def torchserve_error(error: GatewayError) -> tuple[int, bytes]:
    status = http_status(error)
    return status, torchserve_body(status, TORCHSERVE_TYPES[error.code], error.message)


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})


def error_response(error: GatewayError) -> tuple[int, bytes]:
    return http_status(error), error_body(error.message)


class JSONResponse(Response):
    """A JSON response serialized by orjson (what FastAPI's deprecated ORJSONResponse did)."""

    media_type = media_types.JSON

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
