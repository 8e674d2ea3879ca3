"""Bounded load: requests at a fixed arrival rate (open loop), each timed and kept.

An open loop sends request ``i`` at ``start + i / rate`` whether or not earlier ones were answered,
as independent users do; a closed loop would slow down with the server and hide an overload.
Every run is bounded by ``duration_s`` and, through the client's timeout, by how long the last
request may take.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import uvloop

from loadtests.chaos.client import Reply

VARIANT_HEADER = "x-gateway-variant"
T = TypeVar("T")


@dataclass(frozen=True)
class Sample:
    """One request as the client saw it."""

    index: int
    started: float
    latency_s: float
    status: int
    variant: str
    tag: str
    body: bytes
    error: str
    late_s: float = 0.0
    """How long after its planned time the driver sent it (its own lag: a busy machine)."""

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def ended(self) -> float:
        return self.started + self.latency_s


Send = Callable[[int], Awaitable[tuple[Reply, str]]]
"""Sends request ``i``; returns its reply and a tag saying what kind of request it was."""


async def open_loop(
    send: Send, rate: float, duration_s: float, stop: asyncio.Event | None = None
) -> list[Sample]:
    """``rate`` requests a second for ``duration_s`` (or until ``stop`` is set); every sample."""
    count = int(rate * duration_s)
    start = time.monotonic()
    tasks: list[asyncio.Task[Sample]] = []
    for index in range(count):
        if stop is not None and stop.is_set():
            break
        delay = start + index / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_timed(send, index, start + index / rate)))
    return list(await asyncio.gather(*tasks))


async def _timed(send: Send, index: int, planned: float) -> Sample:
    reply, tag = await send(index)
    return Sample(
        index,
        reply.started,
        reply.latency_s,
        reply.status,
        reply.headers.get(VARIANT_HEADER, ""),
        tag,
        reply.body[:300] if reply.status != 200 else b"",
        reply.error,
        max(0.0, reply.started - planned),
    )


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run a driver coroutine on uvloop (cheaper per request than asyncio's own loop)."""
    return uvloop.run(main)
