"""Reading request bodies: decompression that refuses what it would otherwise drop, and the
worker-wide budget of buffered body bytes."""

from __future__ import annotations

import asyncio
import gzip
import zlib

import pytest

from gateway.errors import InvalidInput, Overloaded, PayloadTooLarge
from gateway.http.asgi import BodyBudget, Held, Message, decode_content, read_body, wants_upgrade

LIMIT = 1 << 20
DOC = b'{"inputs": []}' * 100


def held(limit: int = 4 * LIMIT) -> Held:
    return Held(BodyBudget(limit))


def test_one_complete_gzip_or_deflate_stream_is_decoded():
    assert decode_content(gzip.compress(DOC), b"gzip", LIMIT, held()) == DOC
    assert decode_content(zlib.compress(DOC), b"deflate", LIMIT, held()) == DOC
    assert decode_content(DOC, None, LIMIT, held()) == DOC


@pytest.mark.parametrize(
    ("body", "encoding", "message"),
    [
        (gzip.compress(DOC) + b"garbage", b"gzip", "7 bytes after the end of its gzip stream"),
        (gzip.compress(DOC) + gzip.compress(DOC), b"gzip", "a second gzip member"),
        (zlib.compress(DOC) + b"\0", b"deflate", "1 bytes after the end of its deflate stream"),
        (gzip.compress(DOC)[:-12], b"gzip", "truncated gzip stream"),
        (b"not gzip at all", b"gzip", "not valid gzip"),
    ],
    ids=["trailing garbage", "second member", "deflate trailer", "truncated", "not gzip"],
)
def test_a_body_that_is_not_exactly_one_stream_is_refused(body, encoding, message):
    with pytest.raises(InvalidInput, match=message):
        decode_content(body, encoding, LIMIT, held())


def test_a_bomb_stops_at_the_limit():
    bomb = gzip.compress(b"\0" * (64 * LIMIT))  # 64 MiB of zeros in 64 KiB
    with pytest.raises(PayloadTooLarge, match="decompressed request body exceeds"):
        decode_content(bomb, b"gzip", LIMIT, held())


def test_the_budget_counts_compressed_and_decompressed_bytes_until_released():
    budget = BodyBudget(3 * len(DOC))
    first = Held(budget)
    compressed = gzip.compress(DOC)
    first.take(len(compressed))
    decode_content(compressed, b"gzip", LIMIT, first)
    assert budget.held == len(compressed) + len(DOC)
    second = Held(budget)
    with pytest.raises(Overloaded, match=r"server\.max_buffered_request_bytes"):
        second.take(2 * len(DOC))
    first.release()
    second.take(2 * len(DOC))
    assert budget.held == 2 * len(DOC)


def messages(*chunks: bytes) -> list[Message]:
    return [
        {"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1}
        for index, chunk in enumerate(chunks)
    ]


def read(queue: list[Message], declared: int | None, held: Held) -> bytes:
    received: list[Message] = []

    async def receive() -> Message:
        received.append(queue[len(received)])
        return received[-1]

    return asyncio.run(read_body(receive, LIMIT, declared, held))


def test_a_declared_length_beyond_the_budget_is_refused_before_the_body_is_read():
    budget = BodyBudget(LIMIT)
    budget.take(LIMIT - 10)
    with pytest.raises(Overloaded):
        read([], declared=100, held=Held(budget))  # an empty queue: receive() is never called


def test_a_chunked_body_takes_from_the_budget_chunk_by_chunk():
    budget = BodyBudget(2 * LIMIT)
    budget.take(LIMIT)
    chunk = b"x" * (LIMIT // 4)
    one = Held(budget)
    assert read(messages(chunk, chunk), None, one) == chunk * 2
    assert budget.held == LIMIT + 2 * len(chunk)
    with pytest.raises(Overloaded):
        read(messages(chunk, chunk, chunk), None, Held(budget))
    one.release()


def test_chunked_bodies_are_bounded_by_the_request_limit_too():
    chunk = b"x" * (LIMIT // 2 + 1)
    with pytest.raises(PayloadTooLarge):
        read(messages(chunk, chunk), None, held())


def test_upgrade_needs_both_headers():
    assert wants_upgrade(b"keep-alive, Upgrade", b"websocket")
    assert not wants_upgrade(None, b"websocket")
    assert not wants_upgrade(b"upgrade", None)
