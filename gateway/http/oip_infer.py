"""``POST /v2/models/{m}[/versions/{v}]/infer``: the Open Inference Protocol hot path.

Runs as raw ASGI (no framework routing, no per-request validation models): decode the body once,
route, call the backend, encode once.
"""

from __future__ import annotations

import logging
import time

from gateway.codecs import oip_json
from gateway.config import ServerConfig
from gateway.errors import GatewayError, InternalError, InvalidInput
from gateway.http.asgi import (
    ClientDisconnected,
    Headers,
    Receive,
    Scope,
    Send,
    decode_content,
    read_body,
    send_response,
)
from gateway.http.errors import error_response
from gateway.metrics import RequestRecord
from gateway.service import InferenceService, RouteHints

log = logging.getLogger(__name__)

PROTOCOL = "oip_rest"
CLIENT_CLOSED = 499  # nginx's status for "the client went away"


class OipInferEndpoint:
    def __init__(self, service: InferenceService, server: ServerConfig) -> None:
        self._service = service
        self._metrics = service.metrics
        self._sticky_header = server.sticky_header.encode()
        self._variant_header = server.variant_header.encode()
        self._limit = server.max_request_bytes

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, model: str, version: str | None
    ) -> None:
        record = RequestRecord(PROTOCOL, time.perf_counter())
        status = 500
        out: Headers = []
        try:
            status, out, body = await self._handle(scope, receive, record, model, version)
        except ClientDisconnected:
            self._metrics.finish(record, CLIENT_CLOSED)
            return
        except GatewayError as error:
            status, body = error_response(error)
            out = [(b"content-type", b"application/json")]
        except Exception:
            log.exception("inference request for %r failed", model)
            status, body = error_response(InternalError("internal gateway error; see its log"))
            out = [(b"content-type", b"application/json")]
        if record.variant is not None:
            out.append((self._variant_header, record.variant.name.encode()))
        try:
            await send_response(send, status, out, body)
        finally:
            self._metrics.finish(record, status)

    async def _handle(
        self, scope: Scope, receive: Receive, record: RequestRecord, model: str, version: str | None
    ) -> tuple[int, Headers, bytes]:
        json_length: int | None = None
        declared: int | None = None
        encoding: bytes | None = None
        pin: str | None = None
        sticky: str | None = None
        for name, value in scope["headers"]:
            if name == b"inference-header-content-length":
                json_length = _int_header(name, value)
            elif name == b"content-length":
                declared = _int_header(name, value)
            elif name == self._sticky_header:
                sticky = value.decode("latin-1")
            elif name == self._variant_header:
                pin = value.decode("latin-1")
            elif name == b"content-encoding":
                encoding = value.lower()
        body = await read_body(receive, self._limit, declared)
        body = decode_content(body, encoding, self._limit)
        request = oip_json.decode_request(body, json_length, model, version)
        hints = RouteHints(pin=pin, sticky_key=sticky, timeout_s=_timeout_s(request.parameters))
        response, _ = await self._service.infer(request, hints, record)
        outputs = await response.output_tensors()
        payload, binary_from = oip_json.encode_response(outputs, response, request)
        if binary_from is None:
            return 200, [(b"content-type", b"application/json")], payload
        return (
            200,
            [
                (b"content-type", b"application/octet-stream"),
                (b"inference-header-content-length", str(binary_from).encode()),
            ],
            payload,
        )


def _int_header(name: bytes, value: bytes) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise InvalidInput(f"header {name.decode()} must be a non-negative integer")
    return number


def _timeout_s(parameters: dict[str, object]) -> float | None:
    """Triton's ``timeout`` request parameter, in microseconds."""
    value = parameters.get("timeout")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InvalidInput("parameters.timeout must be a positive integer of microseconds")
    return value / 1_000_000
