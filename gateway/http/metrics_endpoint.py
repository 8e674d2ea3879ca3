"""``GET /metrics``: the exposition streamed as it is rendered (chunked), between other requests."""

from __future__ import annotations

import asyncio
import contextlib

from gateway.exposition.scrape import Exposition
from gateway.exposition.text import CONTENT_TYPE
from gateway.http.asgi import Receive, Scope, Send


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class MetricsEndpoint:
    def __init__(self, exposition: Exposition) -> None:
        self._exposition = exposition

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", CONTENT_TYPE.encode())],
            }
        )

        async def write(chunk: bytes) -> None:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})

        # A scraper that gives up (its timeout) must not leave a render running for nobody.
        disconnected = asyncio.create_task(_disconnect(receive))
        try:
            await self._exposition.stream(write, disconnected.done)
        finally:
            disconnected.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await disconnected
        await send({"type": "http.response.body", "body": b""})
