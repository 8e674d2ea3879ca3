"""One backend's circuit breaker (Envoy's ``max_requests`` / ``max_pending_requests``).

Calls in flight take a slot; when all are taken a request waits in a bounded FIFO queue, never
past the moment its deadline could still cover a call (as recent calls took); when the queue is
full it is refused at once. Nothing that waits here has been sent: a request refused or timed out
in the queue costs the backend nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

from gateway.backends.base import BackendModel
from gateway.errors import DeadlineExceeded, Overloaded
from gateway.limits.adaptive import GradientLimit
from gateway.limits.estimate import FORGET_S, CallTimes
from gateway.limits.loop_lag import LoopLag


class CircuitBreaker:
    __slots__ = (
        "_calls",
        "_clock",
        "_waiters",
        "active",
        "adaptive",
        "backend",
        "max_pending",
        "max_requests",
        "on_shed",
    )

    def __init__(
        self,
        backend: str,
        max_requests: int,
        max_pending: int,
        clock: Callable[[], float] = time.monotonic,
        on_shed: Callable[[str, str], None] | None = None,
        adaptive: bool = False,
        on_adaptive: Callable[[GradientLimit], None] | None = None,
        loop_lag: LoopLag | None = None,
    ) -> None:
        self.backend = backend
        lag = None if loop_lag is None else loop_lag.read
        self.adaptive = (
            GradientLimit(max_requests, clock, listener=on_adaptive, lag=lag) if adaptive else None
        )
        """With adaptive concurrency, it moves ``max_requests`` between 1 and the configured."""
        self.max_requests = max_requests if self.adaptive is None else self.adaptive.limit
        self.max_pending = max_pending
        self.active = 0
        self.on_shed = on_shed
        """Told (backend, limit) of every request refused here; ``on_adaptive`` is told the
        controller whenever the adaptive limit's state changes."""
        self._clock = clock
        self._calls = CallTimes(clock)
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def pending(self) -> int:
        return sum(not waiter.done() for waiter in self._waiters)

    def acquire_now(self, target: BackendModel, deadline: float) -> float | None:
        """Take a free slot for a call to ``target`` and return the seconds left for the call,
        or ``None`` if every slot is taken (then :meth:`acquire` queues).

        Raises :class:`DeadlineExceeded` when the time left would not cover a call as recent
        ones took: the request is never sent.
        """
        if self.active >= self.max_requests or self._waiters:
            return None
        self.active += 1
        # _left, inline (this runs for every request): most calls find time to spare.
        now = self._clock()
        left = deadline - now
        versions = self._calls.by_name.get(target.name)
        if versions is None:
            if left > 0:
                return left
        else:
            estimate = versions.get(target.version)
            if estimate is None or now - estimate.seen > FORGET_S:
                if left > 0:
                    return left
            elif left > estimate.needed and left > 0:
                return left
        return self._left(target, deadline)

    async def acquire(self, target: BackendModel, deadline: float) -> float:
        """Take a slot, waiting in the queue if need be; returns the seconds left for the call.

        Raises :class:`Overloaded` when every slot and queue place is taken, and
        :class:`DeadlineExceeded` when the time left (at once, or after waiting) would not
        cover a call as recent ones took: either way the request is never sent.
        """
        left = self.acquire_now(target, deadline)
        if left is not None:
            return left
        return await self.queue(target, deadline)

    def _left(self, target: BackendModel, deadline: float) -> float:
        now = self._clock()
        left = deadline - now
        needed = self._calls.needed(target, now)
        if left <= needed or left <= 0:
            self.release()
            self._shed("deadline")
            if left <= 0:
                raise DeadlineExceeded(
                    f"the deadline passed before a call to backend {self.backend!r} could be "
                    "sent: not sent"
                )
            raise DeadlineExceeded(
                f"{_ms(left)} left before the deadline, and a call to backend "
                f"{self.backend!r} takes about {_ms(needed)}: not sent"
            )
        return left

    async def queue(self, target: BackendModel, deadline: float) -> float:
        """:meth:`acquire` once :meth:`acquire_now` has found every slot taken (with no await
        in between): wait in the queue, then return the seconds left for the call."""
        if len(self._waiters) >= self.max_pending:
            self._drop_finished()
            if len(self._waiters) >= self.max_pending:
                self._shed("max_pending_requests")
                raise Overloaded(
                    f"backend {self.backend!r} has {self.active} calls in flight "
                    f"(circuit_breakers.max_requests: {self.max_requests}) and "
                    f"{len(self._waiters)} waiting (circuit_breakers.max_pending_requests: "
                    f"{self.max_pending}); retry shortly"
                )
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._waiters.append(waiter)
        now = self._clock()
        wait_s = deadline - self._calls.needed(target, now) - now
        # The timer fails the waiter itself rather than cancelling the task (asyncio.timeout):
        # one timer handle and one running-loop lookup (asyncio.timeout makes three more, each
        # a getpid() system call on Python 3.11). A waiter handed a slot before its timer fires
        # keeps it; one failed here is skipped by release.
        timer = loop.call_later(wait_s, _expire, waiter)
        try:
            await waiter
        except TimeoutError:
            self._shed("deadline")
            raise DeadlineExceeded(
                f"waited for one of backend {self.backend!r}'s "
                f"{self.max_requests} slots (circuit_breakers.max_requests) until too little "
                "of the deadline was left for a call: not sent"
            ) from None
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release()  # handed a slot just as the request was cancelled: pass it on
            raise
        finally:
            timer.cancel()
            if not waiter.done():
                waiter.cancel()
        return self._left(target, deadline)

    def _drop_finished(self) -> None:
        self._waiters = deque(waiter for waiter in self._waiters if not waiter.done())

    def release(self) -> None:
        """Give the slot back: to the first request still waiting, else to the pool (and to
        nobody while an adaptive limit is below the calls in flight)."""
        if self.active > self.max_requests:
            self.active -= 1
            return
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on: ``active`` stays the same
                return
        self.active -= 1

    def observe(self, target: BackendModel, seconds: float) -> None:
        """A call to ``target`` succeeded in ``seconds`` (feeds the call-time estimate)."""
        self._calls.observe(target, seconds)
        if self.adaptive is not None:
            self._resize(self.adaptive.sample(seconds))

    def succeeded(self, target: BackendModel, seconds: float) -> None:
        """:meth:`observe`, then :meth:`release`: a call's slot back after its success."""
        self._calls.observe(target, seconds)
        if self.adaptive is not None:
            limit = self.adaptive.sample(seconds)
            # _resize only when it has something to do: most samples leave the limit as it is,
            # and with nobody queued there is no one to hand a slot.
            if limit != self.max_requests or self._waiters:
                self._resize(limit)
        if self.active > self.max_requests or self._waiters:
            self.release()
        else:
            self.active -= 1

    def timed_out(self, target: BackendModel, seconds: float, queued: bool) -> None:
        """A call to ``target`` timed out after ``seconds``: it needed at least that long.

        A call that had queued for its slot (and was sent with what the wait left) refines
        the call-time estimate of a backend that also answers: otherwise requests sent with
        just the time calls used to take would keep timing out and teach it nothing. One that
        had all its time does not count, nor does any at a backend that answers nothing (a
        hung backend: later requests still get their whole deadline, not a refusal)."""
        if queued:
            self._calls.refine(target, seconds)
        if self.adaptive is not None:
            self._resize(self.adaptive.sample(seconds))

    def _resize(self, limit: int) -> None:
        self.max_requests = limit
        waiters = self._waiters
        while self.active < limit and waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                self.active += 1
                waiter.set_result(None)

    def _shed(self, limit: str) -> None:
        if self.on_shed is not None:
            self.on_shed(self.backend, limit)


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


def _ms(seconds: float) -> str:
    """Milliseconds as a person reads them: ``62 ms``, and ``0.05 ms`` below one (not ``0 ms``)."""
    milliseconds = seconds * 1000
    return f"{milliseconds:.0f} ms" if milliseconds >= 1 else f"{milliseconds:.2g} ms"
