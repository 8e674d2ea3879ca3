"""A bounded pool of shadow jobs on the worker's event loop: at most ``max_concurrent`` run at
once, at most ``max_queued`` wait; a job that finds both full is refused, never queued without
bound. Jobs are coroutine factories, so a refused one leaves nothing to clean up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]


class ShadowPool:
    def __init__(self, max_concurrent: int, max_queued: int) -> None:
        self.max_concurrent = max_concurrent
        self.max_queued = max_queued
        self._running: set[asyncio.Task[None]] = set()
        self._queue: deque[Job] = deque()

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def queued(self) -> int:
        return len(self._queue)

    def resize(self, max_concurrent: int, max_queued: int) -> None:
        self.max_concurrent, self.max_queued = max_concurrent, max_queued
        while len(self._queue) > max_queued:
            self._queue.pop()
        self._start_queued()

    def submit(self, job: Job) -> bool:
        """Run or queue ``job``; False when there is no room (the caller counts the drop)."""
        if len(self._running) < self.max_concurrent:
            self._start(job)
            return True
        if len(self._queue) < self.max_queued:
            self._queue.append(job)
            return True
        return False

    def _start(self, job: Job) -> None:
        task = asyncio.ensure_future(job())
        self._running.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            log.error("shadow job failed: %r", error, exc_info=error)
        self._start_queued()

    def _start_queued(self) -> None:
        while self._queue and len(self._running) < self.max_concurrent:
            self._start(self._queue.popleft())

    async def close(self) -> None:
        """Forget the queued jobs and cancel the running ones."""
        self._queue.clear()
        running = list(self._running)
        for task in running:
            task.cancel()
        for task in running:
            with contextlib.suppress(asyncio.CancelledError):
                await task
