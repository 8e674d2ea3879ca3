"""How long a call to each backend model takes, as recently observed: a request with less
time left would most likely time out at the backend, which then works for nobody."""

from __future__ import annotations

import time
from collections.abc import Callable

from gateway.backends.base import BackendModel

GAIN, VARIANCE_GAIN = 1 / 8, 1 / 4
"""TCP's round-trip estimator (RFC 6298): a smoothed mean and a smoothed mean deviation."""
DEVIATIONS = 2
"""A call is expected to need the mean plus this many deviations (about its 90th percentile)."""
FORGET_S = 10.0
"""Without a call observed for this long the estimate is dropped: a backend that was slow
once is tried again, rather than refused forever by requests that never reach it."""


class _Estimate:
    __slots__ = ("deviation", "mean", "needed", "seen")

    def __init__(self, seconds: float, seen: float) -> None:
        self.mean = seconds
        self.deviation = seconds / 2
        self.needed = seconds + DEVIATIONS * self.deviation
        self.seen = seen


class CallTimes:
    """Per backend model: how long a call takes (mean + 2 mean deviations), from successful
    calls, refined by those that timed out after queueing (which took at least that long)."""

    __slots__ = ("_clock", "by_name")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # By name, then version: strings keep their hash, a BackendModel computes it per call.
        # The breaker reads it directly on its hot path (CircuitBreaker.acquire_now).
        self.by_name: dict[str, dict[str, _Estimate]] = {}

    def needed(self, target: BackendModel, now: float) -> float:
        """Seconds a call to ``target`` needs; 0 when unknown (nothing is refused then)."""
        versions = self.by_name.get(target.name)
        estimate = versions.get(target.version) if versions is not None else None
        if estimate is None or now - estimate.seen > FORGET_S:
            return 0.0
        return estimate.needed

    def refine(self, target: BackendModel, seconds: float) -> None:
        """A call to ``target`` timed out after ``seconds``: it counts only beside successful
        calls seen recently. A backend that has answered nothing lately (hung, or calls that
        all time out) has no estimate to refine: its requests keep their whole deadline rather
        than being refused on the times of calls that were cut short."""
        versions = self.by_name.get(target.name)
        estimate = versions.get(target.version) if versions is not None else None
        if estimate is not None and self._clock() - estimate.seen <= FORGET_S:
            self.observe(target, seconds)

    def observe(self, target: BackendModel, seconds: float) -> None:
        now = self._clock()
        versions = self.by_name.get(target.name)
        if versions is None:
            versions = self.by_name[target.name] = {}
        estimate = versions.get(target.version)
        if estimate is None or now - estimate.seen > FORGET_S:
            versions[target.version] = _Estimate(seconds, now)
            return
        mean = estimate.mean
        deviation = estimate.deviation + VARIANCE_GAIN * (abs(seconds - mean) - estimate.deviation)
        mean += GAIN * (seconds - mean)
        estimate.mean, estimate.deviation, estimate.seen = mean, deviation, now
        estimate.needed = mean + DEVIATIONS * deviation
