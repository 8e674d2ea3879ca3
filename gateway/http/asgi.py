"""Small raw-ASGI helpers for the endpoints that skip the framework (the inference hot path)."""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from gateway.errors import InvalidInput, Overloaded, PayloadTooLarge, UnsupportedMediaType

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

Headers = list[tuple[bytes, bytes]]


class ClientDisconnected(Exception):
    """The client went away before sending its whole body."""


class UpgradeRequested(Exception):
    """``Connection: upgrade`` with an ``Upgrade`` header: the HTTP parser stops at the headers
    (whatever follows belongs to the new protocol), so there is no body to read."""


def wants_upgrade(connection: bytes | None, upgrade: bytes | None) -> bool:
    return upgrade is not None and connection is not None and b"upgrade" in connection.lower()


class BodyBudget:
    """The bytes of request bodies one worker holds, all requests together, against a cap.

    Each request takes what it buffers (a declared ``Content-Length`` at once, a chunked body
    chunk by chunk, a decompressed body when it is inflated) and gives it all back when it ends.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def take(self, size: int) -> None:
        if self.held + size > self.limit:
            raise Overloaded(
                f"the gateway holds {self.held} bytes of request bodies and may hold {self.limit} "
                "(server.max_buffered_request_bytes); retry shortly"
            )
        self.held += size

    def give(self, size: int) -> None:
        self.held -= size


class Held:
    """What one request took from the budget."""

    __slots__ = ("_budget", "size")

    def __init__(self, budget: BodyBudget) -> None:
        self._budget = budget
        self.size = 0

    def take(self, size: int) -> None:
        self._budget.take(size)
        self.size += size

    def release(self) -> None:
        self._budget.give(self.size)
        self.size = 0


async def read_body(receive: Receive, limit: int, declared: int | None, held: Held) -> bytes:
    if declared is not None:
        if declared > limit:
            raise PayloadTooLarge(
                f"request body of {declared} bytes exceeds the {limit}-byte limit"
            )
        held.take(declared)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"request body exceeds the {limit}-byte limit")
            if declared is None:
                held.take(len(chunk))
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def decode_content(body: bytes, encoding: bytes | None, limit: int, held: Held) -> bytes:
    """Undo ``Content-Encoding: gzip|deflate`` (tritonclient's request compression).

    Exactly one complete stream: truncated input, bytes after its end (garbage, or a second gzip
    member) are refused rather than silently dropped. A bomb stops at ``limit`` + 1 bytes.
    """
    if encoding is None or encoding in (b"identity", b""):
        return body
    if encoding == b"gzip":
        wbits = 16 + zlib.MAX_WBITS
    elif encoding == b"deflate":
        wbits = zlib.MAX_WBITS
    else:
        raise UnsupportedMediaType(
            f"unsupported Content-Encoding {encoding.decode(errors='replace')!r}"
        )
    name = encoding.decode()
    decompressor = zlib.decompressobj(wbits)
    try:
        data = decompressor.decompress(body, limit + 1)
    except zlib.error as error:
        raise InvalidInput(f"request body is not valid {name}: {error}") from None
    if len(data) > limit or decompressor.unconsumed_tail:
        raise PayloadTooLarge(f"decompressed request body exceeds the {limit}-byte limit")
    if not decompressor.eof:
        raise InvalidInput(f"request body is a truncated {name} stream")
    if decompressor.unused_data:
        extra = len(decompressor.unused_data)
        raise InvalidInput(
            f"request body has {extra} bytes after the end of its {name} stream "
            "(trailing data or a second gzip member)"
        )
    held.take(len(data))
    return data


async def send_response(send: Send, status: int, headers: Headers, body: bytes) -> None:
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
