"""A lean HTTP/1.1 keep-alive client for REST backends: asyncio protocols and httptools.

Why not a general client: the hot path sends one small request and reads one response per call.
aiohttp spent about a quarter of the gateway's CPU doing that (profiled under wrk), httpx more;
this writes each request with one ``write`` and parses the reply in C. Connections are pooled per
(host, port), up to ``max_connections`` in use at once; waiting for one counts toward the call's
deadline. A request that fails on a reused connection before any reply byte arrives (the server
had closed it while idle) is retried once on a new connection.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools

from gateway.backends.boundary import ConnectTimeout, http_boundary


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int
    body: bytes
    content_type: str | None
    header_length: int | None = None
    """Inference-Header-Content-Length of an OIP reply with binary tensors."""


class StaleConnection(ConnectionError):
    """A reused connection closed before any reply byte: the request can safely go again."""


class _Connection(asyncio.Protocol):
    """One TCP connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[HttpReply] | None = None
        self._chunks: list[bytes] = []
        self._content_type: str | None = None
        self._header_length: int | None = None
        self._received = False
        self.reusable = False
        self.used = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(error)

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        self.transport = None
        if self._waiter is not None and not self._waiter.done():
            if self.used and not self._received:
                self._fail(StaleConnection("connection closed before the reply"))
            else:
                self._fail(ConnectionResetError("backend closed the connection mid-reply"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        lowered = name.lower()
        if lowered == b"content-type":
            self._content_type = value.decode("latin-1")
        elif lowered == b"inference-header-content-length" and value.isdigit():
            self._header_length = int(value)

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        body = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self.reusable = self._parser.should_keep_alive()
        if self._waiter is not None and not self._waiter.done():
            reply = HttpReply(
                self._parser.get_status_code(), body, self._content_type, self._header_length
            )
            self._waiter.set_result(reply)

    def _fail(self, error: BaseException) -> None:
        self.reusable = False
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(error)
        if self.transport is not None:
            self.transport.close()

    def send(self, head: bytes, body: bytes | None) -> asyncio.Future[HttpReply]:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._chunks = []
        self._content_type = None
        self._header_length = None
        self._received = False
        self.reusable = False
        if body:
            self.transport.writelines((head, body))
        else:
            self.transport.write(head)
        return self._waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class _Endpoint:
    """Idle connections to one host:port."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.idle: deque[_Connection] = deque()
        self.host_header = f"Host: {host}:{port}\r\n".encode()


class HttpPool:
    def __init__(self, backend: str, max_connections: int, connect_timeout_s: float) -> None:
        self._backend = backend
        self._connect_timeout_s = connect_timeout_s
        self._slots = asyncio.Semaphore(max_connections)
        self._endpoints: dict[tuple[str, int], _Endpoint] = {}
        self._targets: dict[str, tuple[_Endpoint, bytes]] = {}
        self._open: set[_Connection] = set()

    async def start(self) -> None:
        """Connections are opened on demand; nothing to do before traffic."""

    async def close(self) -> None:
        for connection in list(self._open):
            connection.close()
        self._open.clear()
        for endpoint in self._endpoints.values():
            endpoint.idle.clear()

    def _target(self, url: str) -> tuple[_Endpoint, bytes]:
        target = self._targets.get(url)
        if target is None:
            parts = urlsplit(url)
            host = parts.hostname or "127.0.0.1"
            port = parts.port or (443 if parts.scheme == "https" else 80)
            key = (host, port)
            endpoint = self._endpoints.get(key)
            if endpoint is None:
                endpoint = self._endpoints[key] = _Endpoint(host, port)
            path = parts.path or "/"
            if parts.query:
                path += "?" + parts.query
            target = self._targets[url] = (endpoint, path.encode())
        return target

    async def request(
        self,
        method: str,
        url: str,
        timeout_s: float,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpReply:
        """Send one request and read the whole reply. Transport errors become gateway errors."""
        endpoint, path = self._target(url)
        head = [f"{method} ".encode(), path, b" HTTP/1.1\r\n", endpoint.host_header]
        if body is not None or method == "POST":
            head.append(b"Content-Length: %d\r\n" % len(body or b""))
        if headers:
            head.extend(f"{name}: {value}\r\n".encode("latin-1") for name, value in headers.items())
        head.append(b"\r\n")
        request_head = b"".join(head)
        with http_boundary(self._backend, timeout_s):
            async with asyncio.timeout(timeout_s), self._slots:
                try:
                    return await self._exchange(endpoint, request_head, body, reuse=True)
                except StaleConnection:
                    return await self._exchange(endpoint, request_head, body, reuse=False)

    async def _exchange(
        self, endpoint: _Endpoint, head: bytes, body: bytes | None, reuse: bool
    ) -> HttpReply:
        connection = self._idle(endpoint) if reuse else None
        if connection is None:
            connection = await self._connect(endpoint)
        try:
            reply = await connection.send(head, body)
        except BaseException:
            connection.close()
            self._open.discard(connection)
            raise
        connection.used = True
        if connection.reusable and connection.transport is not None:
            endpoint.idle.append(connection)
        else:
            connection.close()
            self._open.discard(connection)
        return reply

    def _idle(self, endpoint: _Endpoint) -> _Connection | None:
        while endpoint.idle:
            connection = endpoint.idle.pop()  # the most recently used is the likeliest alive
            if connection.transport is not None and not connection.transport.is_closing():
                return connection
            self._open.discard(connection)
        return None

    async def _connect(self, endpoint: _Endpoint) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                _, connection = await loop.create_connection(
                    _Connection, endpoint.host, endpoint.port
                )
        except TimeoutError:
            raise ConnectTimeout(
                f"timed out connecting to {endpoint.host}:{endpoint.port}"
            ) from None
        self._open.add(connection)
        return connection
