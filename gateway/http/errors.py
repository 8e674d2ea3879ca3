"""Gateway errors as HTTP responses: the status from ``gateway.errors.HTTP_STATUS``, and the Open
Inference Protocol's ``{"error": "..."}`` body."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from gateway.errors import GatewayError, http_status


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})


def error_response(error: GatewayError) -> tuple[int, bytes]:
    return http_status(error), error_body(error.message)


class JSONResponse(Response):
    """A JSON response serialized by orjson (what FastAPI's deprecated ORJSONResponse did)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
