"""A keep-alive connection pool to one REST backend.

aiohttp, not httpx: httpx's pool is a known bottleneck under concurrency.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

from gateway.backends.boundary import http_boundary


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int
    body: bytes
    content_type: str | None
    header_length: int | None = None
    """Inference-Header-Content-Length of an OIP reply with binary tensors."""


class HttpPool:
    def __init__(self, backend: str, max_connections: int, connect_timeout_s: float) -> None:
        self._backend = backend
        self._max_connections = max_connections
        self._connect_timeout_s = connect_timeout_s
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self._max_connections, limit_per_host=0, keepalive_timeout=30, ttl_dns_cache=300
        )
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=True)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        url: str,
        timeout_s: float,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpReply:
        """Send one request. Transport errors become gateway errors."""
        assert self._session is not None, "start() first"
        timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=self._connect_timeout_s)
        with http_boundary(self._backend, timeout_s):
            async with self._session.request(
                method, url, data=body, headers=headers, timeout=timeout
            ) as response:
                payload = await response.read()
                headers = response.headers
                length = headers.get("inference-header-content-length")
                return HttpReply(
                    response.status,
                    payload,
                    headers.get("content-type"),
                    int(length) if length is not None and length.isdigit() else None,
                )
