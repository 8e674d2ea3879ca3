"""A gRPC backend that comes back is used at once: no stale reconnect backoff.

gRPC backs off between connection attempts (1 s, growing 1.6x to 120 s by default): a backend
down for a minute could stay unused for a minute more after it is up again. Every backend
channel caps the backoff (``BACKOFF_OPTIONS``), and when readiness sees a target come back, the
backend checks its inference channel: one that is not READY is replaced by a fresh channel
(connected before it takes calls); the old one finishes its calls and closes in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import grpc

BACKOFF_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1_000),
]
CONNECT_WAIT_S = 1.0
"""How long a fresh channel may take to connect before the old one is kept after all."""
RETIRE_GRACE_S = 30.0
"""How long calls still on a replaced channel may run."""


@runtime_checkable
class Reconnects(Protocol):
    async def reconnect(self) -> bool:
        """Make sure inference calls go over a connected channel; True if it was replaced."""


class ChannelRenewal:
    """Replaces a backend's inference channel when it is not connected."""

    def __init__(self, make: Callable[[], grpc.aio.Channel]) -> None:
        self._make = make
        self._retiring: set[asyncio.Task[None]] = set()

    async def renewed(self, channel: grpc.aio.Channel) -> grpc.aio.Channel | None:
        """A fresh connected channel to use instead of ``channel``; None when ``channel`` is
        READY, or when a fresh one cannot connect either (then nothing changes)."""
        if channel.get_state(try_to_connect=True) == grpc.ChannelConnectivity.READY:
            return None
        fresh = self._make()
        try:
            await asyncio.wait_for(fresh.channel_ready(), CONNECT_WAIT_S)
        except TimeoutError:
            await fresh.close()
            return None
        task = asyncio.create_task(channel.close(RETIRE_GRACE_S))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)
        return fresh

    async def close(self) -> None:
        for task in list(self._retiring):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
