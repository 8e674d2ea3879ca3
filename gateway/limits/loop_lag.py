"""How long a ready callback waits for this worker's event loop: the part of a backend call's
measured latency that is the gateway's own.

A backend's answer is read when the loop next polls its sockets and handed to the request a
loop pass later, so every latency the gateway measures includes about a pass of its own loop.
When the worker is saturated (a closed loop into a fast backend) a pass takes as long as the
backend's whole round trip, and latency rises with the calls in flight although nothing queues
in the backend. The adaptive limit must not read that as the backend's queue: holding calls
back in the gateway only moves the same wait into its own queue, at a cost per request.

Measured on demand, not on a timer (an idle worker is not woken): :meth:`LoopLag.read` returns
the median of the last completed run of ``PROBES`` chained ``call_soon`` callbacks (each the
wait for one loop pass) and starts the next run if none is under way. A run older than
``MAX_AGE_S`` says nothing of the loop now and reads as 0: the adaptive limit, which reads it
every 100 ms while it needs it, gets a fresh one from its next update on.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

PROBES = 5
MAX_AGE_S = 0.25


class LoopLag:
    __slots__ = ("_clock", "_lags", "_last", "_measured_at", "_probing")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lags: list[float] = []
        self._last = 0.0
        self._measured_at = -math.inf
        self._probing = False

    def read(self) -> float:
        """The loop's latest measured wait for a pass, in seconds (0 before the first run,
        once it is older than ``MAX_AGE_S``, and outside a running loop)."""
        now = self._clock()
        if not self._probing:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return 0.0
            self._probing = True
            self._lags.clear()
            loop.call_soon(self._probe, loop, now)
        return self._last if now - self._measured_at <= MAX_AGE_S else 0.0

    def _probe(self, loop: asyncio.AbstractEventLoop, scheduled: float) -> None:
        now = self._clock()
        lags = self._lags
        lags.append(now - scheduled)
        if len(lags) < PROBES:
            loop.call_soon(self._probe, loop, now)
            return
        lags.sort()
        self._last = lags[PROBES // 2]
        self._measured_at = now
        self._probing = False
