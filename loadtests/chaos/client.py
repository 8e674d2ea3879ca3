"""A small HTTP/1.1 client over asyncio streams, cheap enough to drive hundreds of requests a
second from one core: keep-alive connections in a pool, ``content-length`` bodies only (what the
gateway answers), and a transport failure reported as status 0 rather than raised."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

TRANSPORT_ERROR = 0
"""The status of a request that got no HTTP answer (refused, reset, closed, timed out)."""


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    started: float
    """``time.monotonic()`` when the request was written."""
    latency_s: float
    error: str = ""


class _StaleConnection(Exception):
    """A pooled connection the server had closed: nothing of an answer was read."""


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def close(self) -> None:
        self.writer.close()


@dataclass
class HttpClient:
    """Requests to one ``host:port``; ``timeout_s`` bounds each request's whole exchange."""

    host: str
    port: int
    timeout_s: float = 30.0
    _idle: list[_Connection] = field(default_factory=list)

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Reply:
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout_s):
                status, reply_headers, payload = await self._exchange(
                    method, path, body, headers or {}
                )
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as error:
            return Reply(TRANSPORT_ERROR, {}, b"", started, time.monotonic() - started, repr(error))
        return Reply(status, reply_headers, payload, started, time.monotonic() - started)

    async def _exchange(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        if self._idle:
            try:
                return await self._exchange_on(self._idle.pop(), method, path, body, headers)
            except _StaleConnection:
                pass  # closed while idle (keep-alive timeout): once more, on a new connection
        return await self._exchange_on(await self._connect(), method, path, body, headers, True)

    async def _exchange_on(
        self,
        connection: _Connection,
        method: str,
        path: str,
        body: bytes,
        headers: dict[str, str],
        fresh: bool = False,
    ) -> tuple[int, dict[str, str], bytes]:
        lines = [f"{method} {path} HTTP/1.1", f"host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"content-length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            connection.writer.write(head + body)
            try:
                status_line = await connection.reader.readuntil(b"\r\n")
            except (asyncio.IncompleteReadError, ConnectionResetError) as error:
                partial = getattr(error, "partial", b"")
                if not fresh and not partial:
                    raise _StaleConnection from error
                raise
            raw_headers = await connection.reader.readuntil(b"\r\n\r\n")
            reply_headers: dict[str, str] = {}
            for line in raw_headers.decode("latin-1").split("\r\n"):
                name, sep, value = line.partition(":")
                if sep:
                    reply_headers[name.strip().lower()] = value.strip()
            length = int(reply_headers.get("content-length", "0"))
            payload = await connection.reader.readexactly(length)
        except BaseException:
            connection.close()
            raise
        if reply_headers.get("connection", "").lower() == "close":
            connection.close()
        else:
            self._idle.append(connection)
        return int(status_line.split(b" ", 2)[1]), reply_headers, payload

    async def _connect(self) -> _Connection:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        return _Connection(reader, writer)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
            with contextlib.suppress(OSError):
                await connection.writer.wait_closed()
