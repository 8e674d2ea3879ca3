"""Gateway errors as HTTP responses: the status from ``gateway.errors.HTTP_STATUS``, and the Open
Inference Protocol's ``{"error": "..."}`` body."""

from __future__ import annotations

import orjson

from gateway.errors import GatewayError, http_status

JSON_HEADERS = [(b"content-type", b"application/json")]


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})


def error_response(error: GatewayError) -> tuple[int, bytes]:
    return http_status(error), error_body(error.message)
