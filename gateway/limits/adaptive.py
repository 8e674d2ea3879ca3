"""An adaptive limit on calls in flight: Envoy's gradient controller (adaptive concurrency
filter), on one backend.

The controller measures the backend's latency with few calls in flight (``MIN_CONCURRENCY``):
that is its minimum round-trip time. Then, every ``INTERVAL_S``, it compares the median
latency of the calls that finished with it: ``gradient = min_rtt * (1 + BUFFER) / sample``,
clamped to [0.5, 2], and sets ``limit = gradient * limit + sqrt(limit)``. Latency rising above
the minimum (calls queueing inside the backend) shrinks the limit; latency at the minimum lets
it grow. The minimum is measured again every ``MIN_RTT_INTERVAL_S``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

MIN_CONCURRENCY = 3
MIN_RTT_SAMPLES = 50
MIN_RTT_INTERVAL_S = 60.0
INTERVAL_S = 0.1
BUFFER = 0.25
MIN_GRADIENT, MAX_GRADIENT = 0.5, 2.0


def _median(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2]


class GradientLimit:
    __slots__ = ("_clock", "_max", "_measured_at", "_next_update", "_samples", "limit", "min_rtt")

    def __init__(self, max_limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._max = max_limit
        self.limit = min(MIN_CONCURRENCY, max_limit)
        self.min_rtt: float | None = None
        """None while it is being measured."""
        self._samples: list[float] = []
        self._measured_at = 0.0
        self._next_update = 0.0

    def sample(self, seconds: float) -> int:
        """A call took ``seconds`` (a timeout counts with its timeout); returns the limit."""
        self._samples.append(seconds)
        now = self._clock()
        if self.min_rtt is None:
            if len(self._samples) >= MIN_RTT_SAMPLES:
                self.min_rtt = _median(self._samples)
                self._samples.clear()
                self._measured_at = now
                self._next_update = now + INTERVAL_S
        elif now >= self._next_update:
            self._update(now)
        return self.limit

    def _update(self, now: float) -> None:
        assert self.min_rtt is not None
        sample = _median(self._samples)
        self._samples.clear()
        self._next_update = now + INTERVAL_S
        if now - self._measured_at >= MIN_RTT_INTERVAL_S:
            self.min_rtt = None  # measure it again, with few calls in flight
            self.limit = min(MIN_CONCURRENCY, self._max)
            return
        target = self.min_rtt * (1 + BUFFER)
        gradient = max(MIN_GRADIENT, min(MAX_GRADIENT, target / sample if sample > 0 else 2.0))
        limit = gradient * self.limit + math.sqrt(self.limit)
        self.limit = max(1, min(self._max, int(limit)))
