"""The shared skeleton of every raw-ASGI hot-path endpoint (OIP, TF Serving and TorchServe REST).

It reads the headers that matter and the body (bounded, decompressed, and counted against the
worker's body budget until the response is sent), runs the endpoint's ``handle``, renders any
gateway error in the endpoint's protocol, adds ``x-gateway-variant`` (and ``traceparent`` when
tracing is on), and reports the request to the observer (metrics, trace, access log) once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

from gateway import media_types
from gateway.config import ServerConfig
from gateway.errors import CLIENT_CLOSED, GatewayError, InternalError, InvalidInput, Overloaded
from gateway.http.asgi import (
    BodyBudget,
    ClientDisconnected,
    Headers,
    Held,
    Receive,
    Scope,
    Send,
    UpgradeRequested,
    decode_content,
    read_body,
    send_response,
    wants_upgrade,
)
from gateway.http.errors import error_response
from gateway.http.protocol import cancel_on_disconnect
from gateway.limits import ConcurrencyLimit
from gateway.metrics import RequestRecord
from gateway.service import InferenceService, RouteHints

log = logging.getLogger(__name__)

UPGRADE_REFUSED = (
    "protocol upgrades are not supported: send the request without 'Connection: upgrade'"
)
JSON_TYPE = [(b"content-type", media_types.JSON.encode())]
INFERENCE_HEADER_LENGTH = media_types.INFERENCE_HEADER_LENGTH.encode()


@dataclass(slots=True)
class Incoming:
    """One request as the endpoint sees it: path parameters, relevant headers, body."""

    params: dict[str, str | None]
    body: bytes
    content_type: str | None
    json_length: int | None
    hints: RouteHints
    received: int
    """Bytes of body as sent (before any Content-Encoding was undone)."""


class RawEndpoint(ABC):
    protocol: str
    """The ``protocol`` label of this endpoint's requests in the metrics."""
    route: str
    """The path template of its requests (a span's name and ``http.route``)."""

    def __init__(
        self,
        service: InferenceService,
        server: ServerConfig,
        budget: BodyBudget,
        concurrency: ConcurrencyLimit,
    ) -> None:
        self.service = service
        self._budget = budget
        self._observer = service.observer
        self._concurrency = concurrency
        self._sticky_header = server.sticky_header.encode()
        self._variant_header = server.variant_header.encode()
        self._limit = server.max_request_bytes

    @abstractmethod
    async def handle(self, incoming: Incoming, record: RequestRecord) -> tuple[int, Headers, bytes]:
        """Serve the request; raise GatewayError for anything the client should hear about."""

    def render_error(self, error: GatewayError) -> tuple[int, Headers, bytes]:
        status, body = error_response(error)
        return status, list(JSON_TYPE), body

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, params: dict[str, str | None]
    ) -> None:
        record = RequestRecord(self.protocol, time.perf_counter())
        record.origin = scope
        observer = self._observer
        if observer.tracer is not None:
            record.trace = observer.tracer.begin_http(scope, self.route, self.protocol)
        held = Held(self._budget)
        try:
            answer = await self._answer(scope, receive, params, record, held)
            if answer is None:
                observer.finish(record, CLIENT_CLOSED)
                return
            status, out, body = answer
            if record.variant is not None:
                out.append((self._variant_header, record.variant.name.encode()))
            if record.trace is not None:
                out.append((b"traceparent", record.trace.header))
            record.bytes_out = len(body)
            try:
                await send_response(send, status, out, body)
            finally:
                observer.finish(record, status)
        finally:
            held.release()  # the body is no longer needed once the response is in the transport

    async def _answer(
        self,
        scope: Scope,
        receive: Receive,
        params: dict[str, str | None],
        record: RequestRecord,
        held: Held,
    ) -> tuple[int, Headers, bytes] | None:
        """The response, errors rendered; ``None`` if the client left before its answer."""
        concurrency = self._concurrency
        cycle = None
        try:
            if concurrency.active >= concurrency.limit:
                concurrency.refuse()
            concurrency.active += 1
            try:
                incoming = await self._read(scope, receive, params, held)
                record.bytes_in = incoming.received
                cycle = cancel_on_disconnect(receive)
                try:
                    return await self.handle(incoming, record)
                finally:
                    if cycle is not None:
                        cycle.gateway_task = None
            finally:
                concurrency.active -= 1
        except asyncio.CancelledError:
            if cycle is not None and cycle.disconnected:
                return None  # the backend call was abandoned with the client
            raise
        except ClientDisconnected:
            return None
        except UpgradeRequested:
            record.error = UPGRADE_REFUSED
            status, out, body = self.render_error(InvalidInput(UPGRADE_REFUSED))
            out.append((b"connection", b"close"))  # the parser is past HTTP on this one
            return status, out, body
        except Overloaded as error:
            status, out, body = self.render_error(error)
            out.append((b"retry-after", b"%d" % error.retry_after_s))
            return status, out, body
        except GatewayError as error:
            record.error = error.message
            return self.render_error(error)
        except Exception:
            log.exception("%s request to %s failed", self.protocol, scope["path"])
            record.error = "internal gateway error; see its log"
            return self.render_error(InternalError(record.error))

    async def _read(
        self, scope: Scope, receive: Receive, params: dict[str, str | None], held: Held
    ) -> Incoming:
        json_length: int | None = None
        connection: bytes | None = None
        upgrade: bytes | None = None
        declared: int | None = None
        encoding: bytes | None = None
        content_type: str | None = None
        pin: str | None = None
        sticky: str | None = None
        for name, value in scope["headers"]:
            if name == INFERENCE_HEADER_LENGTH:
                json_length = _int_header(name, value)
            elif name == b"content-length":
                declared = _int_header(name, value)
            elif name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == self._sticky_header:
                sticky = value.decode("latin-1")
            elif name == self._variant_header:
                pin = value.decode("latin-1")
            elif name == b"content-encoding":
                encoding = value.lower()
            elif name == b"connection":
                connection = value
            elif name == b"upgrade":
                upgrade = value
        if wants_upgrade(connection, upgrade):
            raise UpgradeRequested
        raw = await read_body(receive, self._limit, declared, held)
        body = decode_content(raw, encoding, self._limit, held)
        hints = RouteHints(pin, sticky)
        return Incoming(params, body, content_type, json_length, hints, len(raw))


def _int_header(name: bytes, value: bytes) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise InvalidInput(f"header {name.decode()} must be a non-negative integer")
    return number
