"""A closed-loop HTTP/1.1 client: a fixed number of POSTs over a few keep-alive connections.

It sends what the benchmark's wrk script sends (``Host``, ``Content-Type``, ``Content-Length``
and the body), so that a gateway under a profiler sees the benchmark's requests; unlike wrk it
stops after an exact number of requests, which makes a count per request exact.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


@dataclass(frozen=True)
class Sent:
    """What a run of :func:`send` got back."""

    ok: int
    failed: int  # a status other than 200


def request_bytes(port: int, path: str, body: bytes, content_type: str) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    """One response's status; its body is read and dropped (Content-Length framing only)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def _connection(port: int, request: bytes, count: int) -> Sent:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    ok = failed = 0
    try:
        for _ in range(count):
            writer.write(request)
            if await _read_response(reader) == 200:
                ok += 1
            else:
                failed += 1
    finally:
        writer.close()
        await writer.wait_closed()
    return Sent(ok, failed)


async def send(port: int, request: bytes, requests: int, connections: int) -> Sent:
    """``requests`` requests in all, spread evenly over ``connections`` connections."""
    shares = [requests // connections + (i < requests % connections) for i in range(connections)]
    results = await asyncio.gather(
        *(_connection(port, request, share) for share in shares if share > 0)
    )
    return Sent(sum(r.ok for r in results), sum(r.failed for r in results))
