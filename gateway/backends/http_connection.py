"""One HTTP/1.1 connection to a backend: writes a request, parses the reply with httptools.

The reply is bounded: a Content-Length above the limit is refused before any body byte is read,
and a body (chunked or ended by close) that grows past it is dropped with its connection. Interim
``1xx`` replies are skipped. Large and streamed request bodies are written in slices that wait
whenever the transport asks the protocol to pause, so a backend that reads slowly holds at most
about one slice plus the transport's high-water mark in the gateway's buffers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
from dataclasses import dataclass
from typing import cast

import httptools

from gateway import media_types

SINGLE_WRITE_BYTES = 2 * 1024 * 1024
"""Bodies up to this size go out with the head in one write (uvloop queues them uncopied)."""
WRITE_SLICE_BYTES = 1024 * 1024
"""Larger ones go in slices of this size, each once the transport is below its high-water mark:
then a stalled backend holds at most about HIGH_WATER_BYTES + WRITE_SLICE_BYTES of copies (TLS
records, or asyncio's own loop, which copies what the socket does not take at once)."""
INFERENCE_HEADER_LENGTH = media_types.INFERENCE_HEADER_LENGTH.encode()
HIGH_WATER_BYTES = 2 * 1024 * 1024
LOW_WATER_BYTES = 512 * 1024

Body = bytes | AsyncIterable[bytes] | None
"""A request body: whole bytes (sent with Content-Length), chunks (sent chunked), or none."""


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int
    body: bytes
    content_type: str | None
    header_length: int | None = None
    """Inference-Header-Content-Length of an OIP reply with binary tensors."""


class StaleConnection(ConnectionError):
    """A reused connection closed before any reply byte: the request can safely go again."""


class ReplyCut(ConnectionResetError):
    """The connection closed after part of the reply had arrived: sending again is not safe."""


class ReplyTooLarge(Exception):
    """The reply's body is larger than the pool's limit; ``limit`` is that limit in bytes."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


class UnsolicitedReply(Exception):
    """Bytes arrived that answer no request: the connection cannot be trusted again."""


class HttpConnection(asyncio.Protocol):
    """One TCP (or TLS) connection; one request at a time."""

    def __init__(self, max_reply_bytes: int) -> None:
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._limit = max_reply_bytes
        self._waiter: asyncio.Future[HttpReply] | None = None
        self._resume: asyncio.Future[None] | None = None
        self._paused = False
        self.lost = asyncio.get_running_loop().create_future()
        """Resolves when the connection is gone (a TLS close waits for the peer's close)."""
        self._reset_message()
        self._received = False
        self.reusable = False
        self.used = False

    def _reset_message(self) -> None:
        self._chunks: list[bytes] = []
        self._size = 0
        self._content_type: str | None = None
        self._header_length: int | None = None
        self._content_length: int | None = None
        self._chunked = False
        self._until_close = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.set_write_buffer_limits(HIGH_WATER_BYTES, LOW_WATER_BYTES)

    def data_received(self, data: bytes) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            self._fail(UnsolicitedReply())
            return
        self._received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as error:
            cause = error.__context__
            self._fail(cause if isinstance(cause, ReplyTooLarge | UnsolicitedReply) else error)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as error:
            self._fail(error)

    def eof_received(self) -> bool | None:
        self.reusable = False
        return None  # close the transport; connection_lost decides what the reply was

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        self.transport = None
        if not self.lost.done():
            self.lost.set_result(None)
        self.resume_writing()
        if self._waiter is None or self._waiter.done():
            return
        if self._until_close and exc is None:
            self.on_message_complete()  # the reply had no length: it ends with the connection
            self.reusable = False
        elif self.used and not self._received:
            self._fail(StaleConnection("connection closed before the reply"))
        elif self._received:
            self._fail(ReplyCut(f"backend closed the connection mid-reply ({exc or 'EOF'})"))
        else:
            self._fail(exc or ConnectionResetError("backend closed the connection, no reply"))

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake_writer()

    def _wake_writer(self) -> None:
        if self._resume is not None and not self._resume.done():
            self._resume.set_result(None)
        self._resume = None

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        lowered = name.lower()
        if lowered == b"content-type":
            self._content_type = value.decode("latin-1")
        elif lowered == b"content-length" and value.isdigit():
            self._content_length = length = int(value)
            if length > self._limit:
                raise ReplyTooLarge(self._limit)  # before any byte of the body
        elif lowered == b"transfer-encoding":
            self._chunked = b"chunked" in value.lower()
        elif lowered == INFERENCE_HEADER_LENGTH and value.isdigit():
            self._header_length = int(value)

    def on_headers_complete(self) -> None:
        if self._waiter is None or self._waiter.done():
            raise UnsolicitedReply()  # a second reply in the same bytes as the first
        if self._content_length is None and not self._chunked:
            status = self._parser.get_status_code()  # 1xx, 204 and 304 have no body
            self._until_close = status >= 200 and status not in (204, 304)

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self._limit:
            raise ReplyTooLarge(self._limit)
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:
            self._reset_message()  # an interim reply (100 Continue, 103 Early Hints)
            return
        self.reusable = self._parser.should_keep_alive()
        chunks = self._chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self._chunks = []  # an idle connection holds no reply
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(HttpReply(status, body, self._content_type, self._header_length))
        if self._resume is not None:
            self._wake_writer()  # a reply before the whole body was sent ends the writing

    def _fail(self, error: BaseException) -> None:
        self.reusable = False
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(error)
        self._wake_writer()
        if self.transport is not None:
            self.transport.close()

    # requests
    def begin(self) -> asyncio.Future[HttpReply]:
        """Get ready for one reply; the future resolves with it (or the transport's error)."""
        self._waiter = waiter = self.lost.get_loop().create_future()
        # What _reset_message does, inline: this runs for every request.
        self._chunks = []
        self._size = 0
        self._content_type = self._header_length = self._content_length = None
        self._chunked = self._until_close = self._received = self.reusable = False
        return waiter

    def send(self, head: bytes, body: bytes | None) -> asyncio.Future[HttpReply]:
        """A request that fits one write: the head and a small body together."""
        waiter = self.begin()
        assert self.transport is not None
        if body:
            self.transport.writelines((head, body))
        else:
            self.transport.write(head)
        return waiter

    async def write_large(self, head: bytes, body: bytes) -> None:
        """A large body in slices, each after the transport has room again."""
        view = memoryview(body)
        assert self.transport is not None
        self.transport.writelines((head, view[:WRITE_SLICE_BYTES]))
        for start in range(WRITE_SLICE_BYTES, len(body), WRITE_SLICE_BYTES):
            if not await self._room():
                return
            self.transport.write(view[start : start + WRITE_SLICE_BYTES])

    async def write_chunked(self, head: bytes, chunks: AsyncIterable[bytes]) -> None:
        """A streamed body with ``Transfer-Encoding: chunked``, written as the chunks come."""
        assert self.transport is not None
        self.transport.write(head)
        async for chunk in chunks:
            view = memoryview(chunk)
            for start in range(0, len(view), WRITE_SLICE_BYTES):  # none for an empty chunk,
                if not await self._room():  # which would end the body
                    return
                piece = view[start : start + WRITE_SLICE_BYTES]
                self.transport.writelines((b"%x\r\n" % len(piece), piece, b"\r\n"))
        if await self._room():
            self.transport.write(b"0\r\n\r\n")

    async def _room(self) -> bool:
        """Wait while the transport is over its high-water mark; False once writing is moot
        (the connection is gone, or the backend already answered)."""
        if self._paused and self.transport is not None:
            self._resume = asyncio.get_running_loop().create_future()
            await self._resume
        waiter = self._waiter
        return self.transport is not None and waiter is not None and not waiter.done()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
