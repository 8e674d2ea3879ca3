"""A lean HTTP/1.1 keep-alive client for REST backends: asyncio protocols and httptools.

Why not a general client: the hot path sends one small request and reads one response per call.
aiohttp spent about a quarter of the gateway's CPU doing that (profiled under wrk), httpx more;
this writes each small request with one ``write`` (the request line, ``Host`` and the pool's
fixed headers are encoded once per URL) and parses the reply in C. Connections are pooled per
(scheme, host, port), up to ``max_connections`` in use at once; waiting for one counts toward the
call's deadline. A request that fails on a reused connection before any reply byte arrives (the
server had closed it while idle) is retried once on a new connection. ``https://`` URLs are
spoken over TLS (SNI and certificate checks against the URL's host), never in plaintext.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from gateway.backends.boundary import ConnectTimeout, http_boundary
from gateway.backends.deadline import Deadline
from gateway.backends.http_connection import (
    SINGLE_WRITE_BYTES,
    Body,
    HttpConnection,
    HttpReply,
    StaleConnection,
)
from gateway.backends.tls import TlsOptions, client_context
from gateway.config import AnyBackendConfig
from gateway.errors import BackendError, InvalidInput
from gateway.tracing.context import OUTGOING

__all__ = ["Body", "HttpPool", "HttpReply", "TlsOptions", "backend_pool", "tls_options"]


DEFAULT_TLS = TlsOptions()
CLOSE_WAIT_S = 1.0


class _Endpoint:
    """Idle connections to one scheme://host:port."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.idle: deque[HttpConnection] = deque()


@dataclass(frozen=True, slots=True)
class _Target:
    endpoint: _Endpoint
    head: bytes
    """Request line, ``Host`` and the pool's fixed headers, ready to send."""


class HttpPool:
    def __init__(
        self,
        backend: str,
        max_connections: int,
        connect_timeout_s: float,
        max_reply_bytes: int,
        tls: TlsOptions = DEFAULT_TLS,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """``headers`` go on every request (encoded once); ``request`` takes per-call ones."""
        self._backend = backend
        self._connect_timeout_s = connect_timeout_s
        self._max_reply_bytes = max_reply_bytes
        self._tls = tls
        self._fixed_headers = _encode_headers(headers)
        self._slots = asyncio.Semaphore(max_connections)
        self._endpoints: dict[tuple[str, str, int], _Endpoint] = {}
        self._targets: dict[tuple[str, str], _Target] = {}
        self._open: set[HttpConnection] = set()

    async def start(self) -> None:
        """Connections are opened on demand; nothing to do before traffic."""

    async def close(self) -> None:
        """Close every connection; TLS ones get ``CLOSE_WAIT_S`` to finish their goodbyes."""
        connections = list(self._open)
        self._open.clear()
        for endpoint in self._endpoints.values():
            endpoint.idle.clear()
        for connection in connections:
            connection.close()
        if connections:
            await asyncio.wait([c.lost for c in connections], timeout=CLOSE_WAIT_S)
            for connection in connections:
                connection.abort()

    def _target(self, method: str, url: str) -> _Target:
        """The cached request line and endpoint of ``url`` (made on first use)."""
        target = self._targets.get((method, url))
        if target is None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https"):
                raise BackendError(f"backend {self._backend!r}: {url!r} is not an http(s) URL")
            host = parts.hostname or "127.0.0.1"
            port = parts.port or (443 if parts.scheme == "https" else 80)
            key = (parts.scheme, host, port)
            endpoint = self._endpoints.get(key)
            if endpoint is None:
                tls = client_context(self._tls) if parts.scheme == "https" else None
                endpoint = self._endpoints[key] = _Endpoint(host, port, tls)
            path = parts.path or "/"
            if parts.query:
                path += "?" + parts.query
            authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            head = f"{method} {path} HTTP/1.1\r\nHost: {authority}\r\n".encode() + (
                self._fixed_headers
            )
            target = self._targets[(method, url)] = _Target(endpoint, head)
        return target

    async def request(
        self,
        method: str,
        url: str,
        timeout_s: float,
        body: Body = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpReply:
        """Send one request and read the whole reply. Transport errors become gateway errors.

        ``body`` is bytes (sent with Content-Length) or an async iterable of chunks (sent
        chunked, never retried); ``headers`` are this call's own, beside the pool's fixed ones.
        """
        with http_boundary(self._backend, timeout_s):
            target = self._target(method, url)
            head = [target.head]
            if isinstance(body, bytes):
                head.append(b"Content-Length: %d\r\n" % len(body))
            elif body is not None:
                head.append(b"Transfer-Encoding: chunked\r\n")
            elif method == "POST":
                head.append(b"Content-Length: 0\r\n")
            if headers:
                head.append(_encode_headers(headers))
            outgoing = OUTGOING.get()
            if outgoing is not None:
                head.append(outgoing.http)
            head.append(b"\r\n")
            request_head = b"".join(head)
            with Deadline(timeout_s):
                async with self._slots:
                    try:
                        return await self._exchange(target.endpoint, request_head, body, reuse=True)
                    except StaleConnection:
                        if body is not None and not isinstance(body, bytes):
                            raise  # a stream cannot be sent twice
                        return await self._exchange(
                            target.endpoint, request_head, body, reuse=False
                        )

    async def _exchange(
        self, endpoint: _Endpoint, head: bytes, body: Body, reuse: bool
    ) -> HttpReply:
        connection = self._idle(endpoint) if reuse else None
        if connection is None:
            connection = await self._connect(endpoint)
        if body is None or (isinstance(body, bytes) and len(body) <= SINGLE_WRITE_BYTES):
            waiter = connection.send(head, body)
        else:
            waiter = connection.begin()
        try:
            if isinstance(body, bytes) and len(body) > SINGLE_WRITE_BYTES:
                await connection.write_large(head, body)
            elif body is not None and not isinstance(body, bytes):
                await connection.write_chunked(head, body)
            reply = await waiter
        except BaseException:
            connection.close()
            self._open.discard(connection)
            if waiter.done() and not waiter.cancelled():
                waiter.exception()  # retrieved: the error raised here is the one reported
            else:
                waiter.cancel()
            raise
        connection.used = True
        if connection.reusable and connection.transport is not None:
            endpoint.idle.append(connection)
        else:
            connection.close()
            self._open.discard(connection)
        return reply

    def _idle(self, endpoint: _Endpoint) -> HttpConnection | None:
        while endpoint.idle:
            connection = endpoint.idle.pop()  # the most recently used is the likeliest alive
            if connection.transport is not None and not connection.transport.is_closing():
                return connection
            self._open.discard(connection)
        return None

    async def _connect(self, endpoint: _Endpoint) -> HttpConnection:
        loop = asyncio.get_running_loop()
        limit = self._max_reply_bytes
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                _, connection = await loop.create_connection(
                    lambda: HttpConnection(limit),
                    endpoint.host,
                    endpoint.port,
                    ssl=endpoint.tls,
                    server_hostname=endpoint.host if endpoint.tls is not None else None,
                )
        except TimeoutError:
            raise ConnectTimeout(
                f"timed out connecting to {endpoint.host}:{endpoint.port}"
            ) from None
        self._open.add(connection)
        return connection


def _encode_headers(headers: Mapping[str, str] | None) -> bytes:
    if not headers:
        return b""
    try:
        encoded = "".join([f"{name}: {value}\r\n" for name, value in headers.items()]).encode(
            "latin-1"
        )
    except UnicodeEncodeError:
        raise InvalidInput("a header for the backend is not Latin-1 text") from None
    if encoded.count(b"\n") != len(headers) or encoded.count(b"\r") != len(headers):
        raise InvalidInput("a header for the backend holds a line break")
    return encoded


def backend_pool(
    name: str, config: AnyBackendConfig, max_reply_bytes: int, max_connections: int | None = None
) -> HttpPool:
    """The pool a backend's config asks for (its connection limit unless told otherwise)."""
    tls = tls_options(config)
    urls = [value for value in config.model_dump().values() if isinstance(value, str)]
    if any(url.startswith("https://") for url in urls):
        client_context(tls)  # loading CAs takes milliseconds: now, not on the first request
    limit = max_connections or config.max_connections
    return HttpPool(name, limit, config.connect_timeout_s, max_reply_bytes, tls)


def tls_options(config: AnyBackendConfig) -> TlsOptions:
    return TlsOptions(config.tls_ca_file, config.tls_verify)
