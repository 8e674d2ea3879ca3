"""An adaptive limit on calls in flight: Envoy's gradient controller (adaptive concurrency
filter), on one backend.

The controller measures the backend's latency with few calls in flight (``MIN_CONCURRENCY``):
that is its minimum round-trip time. Then, every ``INTERVAL_S``, it compares the median
latency of the calls that finished with it: ``gradient = min_rtt * (1 + BUFFER) / sample``,
clamped to [0.5, 2], and sets ``limit = gradient * limit + sqrt(gradient * limit)``, kept
between 1 and the configured maximum. Latency rising above the minimum (calls queueing inside
the backend) shrinks the limit; latency at the minimum lets it grow.

Envoy keeps the limit at ``MIN_CONCURRENCY`` or above; here it may go down to 1, because a model
server often runs one or two calls at once (a TorchServe worker per model and GPU): a floor of 3
keeps a call queued inside such a backend, where the gateway cannot see it or take it back
(at 4x overload of a backend running 2, goodput fell from 41 to 36 req/s with it). For the same
reason it leaves out Envoy's trigger that measures the minimum again when the limit sits at
its floor: there that is the backend's concurrency, not a wrong minimum.

The minimum is measured again every ``MIN_RTT_INTERVAL_S`` plus up to ``MIN_RTT_JITTER`` of it
(workers and replicas then do not all measure at once). While it is measured the limit is
``MIN_CONCURRENCY``; afterwards it is what it was before, and calls sent before the measurement
began are not part of it.

A listener, if given, is told the controller's state each time it changes (at most once an
``INTERVAL_S``, and at each measurement of the minimum): what Envoy exports as the gradient
controller's ``concurrency_limit``, ``min_rtt_msecs``, ``sample_rtt_msecs`` and
``min_rtt_calculation_active``.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable

MIN_CONCURRENCY = 3
MIN_RTT_SAMPLES = 50
MIN_RTT_INTERVAL_S = 60.0
MIN_RTT_JITTER = 0.15
INTERVAL_S = 0.1
BUFFER = 0.25
MIN_GRADIENT, MAX_GRADIENT = 0.5, 2.0


def _median(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2]


class GradientLimit:
    __slots__ = (
        "_clock",
        "_deferred",
        "_epoch",
        "_lag",
        "_listener",
        "_max",
        "_next_update",
        "_random",
        "_remeasure_at",
        "_samples",
        "limit",
        "loop_lag",
        "min_rtt",
        "sample_rtt",
    )

    def __init__(
        self,
        max_limit: int,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
        listener: Callable[[GradientLimit], None] | None = None,
        lag: Callable[[], float] | None = None,
    ) -> None:
        self._clock = clock
        self._lag = lag
        self._listener = listener
        self._random = jitter
        self._max = max_limit
        self.limit = min(MIN_CONCURRENCY, max_limit)
        self.min_rtt: float | None = None
        """None while it is being measured."""
        self.sample_rtt: float | None = None
        """The median latency of the last interval's calls (None before the first)."""
        self.loop_lag = 0.0
        """The gateway's own event-loop wait allowed for at the last update."""
        self._deferred = self.limit
        """The limit to return to once the minimum is measured."""
        self._samples: list[float] = []
        self._epoch = -math.inf
        """When the minimum was last measured again: calls sent before it are left out."""
        self._remeasure_at = math.inf
        self._next_update = 0.0

    def sample(self, seconds: float) -> int:
        """A call took ``seconds`` (a timeout counts with its timeout); returns the limit."""
        now = self._clock()
        if now - seconds < self._epoch:
            return self.limit  # sent before the minimum was measured again: not at the floor
        self._samples.append(seconds)
        if self.min_rtt is None:
            if len(self._samples) >= MIN_RTT_SAMPLES:
                self.min_rtt = _median(self._samples)
                self._samples.clear()
                self.limit = self._deferred
                self._remeasure_at = now + MIN_RTT_INTERVAL_S * (
                    1 + MIN_RTT_JITTER * self._random()
                )
                self._next_update = now + INTERVAL_S
                self._tell()
        elif now >= self._next_update:
            self._update(now)
        return self.limit

    def _update(self, now: float) -> None:
        assert self.min_rtt is not None
        if now >= self._remeasure_at:
            self._measure_again(now)
            return
        self.sample_rtt = sample = _median(self._samples)
        self._samples.clear()
        self._next_update = now + INTERVAL_S
        target = self.min_rtt * (1 + BUFFER)
        # Below the target the limit grows anyway: the loop is asked only above it (an idle
        # worker is never made to measure).
        self.loop_lag = self._lag() if self._lag is not None and sample > target else 0.0
        target += self.loop_lag
        gradient = max(MIN_GRADIENT, min(MAX_GRADIENT, target / sample if sample > 0 else 2.0))
        scaled = gradient * self.limit
        self.limit = max(1, min(self._max, int(scaled + math.sqrt(scaled))))
        self._tell()

    def _measure_again(self, now: float) -> None:
        self.min_rtt = None
        self._deferred = self.limit
        self.limit = min(MIN_CONCURRENCY, self._max)
        self._samples.clear()
        self._epoch = now
        self._tell()

    def _tell(self) -> None:
        if self._listener is not None:
            self._listener(self)
