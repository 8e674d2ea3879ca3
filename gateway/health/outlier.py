"""Outlier ejection (Envoy's ``consecutive_5xx``): a target that keeps failing is taken out.

The n-th ejection in a row lasts ``n x base_ejection_time`` (capped at ``max_ejection_time``);
n drops by one for every ``base_ejection_time`` the target then stays in. The timer or a passing
readiness probe brings it back. Every decision reads the injected clock, so tests run on
simulated time.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.backends.base import BackendModel
from gateway.config_resilience import OutlierDetection

log = logging.getLogger(__name__)

Key = tuple[str, BackendModel]
"""(backend name, model version at the backend): what is probed and ejected."""


@dataclass(slots=True)
class _Ejection:
    until: float
    base_s: float


@dataclass(slots=True)
class _Record:
    """What is remembered of a target after its ejection: how many in a row, and when back."""

    times: int
    back_at: float
    base_s: float


class EjectionListener:
    """Told of every ejection and un-ejection (metrics); the default does nothing."""

    def ejected(self, key: Key, times: int, duration_s: float) -> None:
        """``key`` is out for ``duration_s``, its ``times``-th ejection in a row."""

    def returned(self, key: Key, reason: str) -> None:
        """``key`` is back in, because of ``reason`` (``timer`` or ``readiness``)."""


class OutlierDetector:
    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        listener: EjectionListener | None = None,
    ) -> None:
        self._clock = clock
        self._listener = listener or EjectionListener()
        self.failures: dict[Key, int] = {}
        """Consecutive failures of each target that has any."""
        self.ejected: dict[Key, _Ejection] = {}
        self._history: dict[Key, _Record] = {}

    def succeeded(self, key: Key) -> None:
        self.failures.pop(key, None)

    def failed(
        self,
        key: Key,
        policy: OutlierDetection,
        siblings: list[Key],
        healthy: Callable[[Key], bool],
    ) -> bool:
        """Count a failure of ``key``; True when it ejects it.

        ``siblings`` are the targets of every variant of the model (``key`` included), against
        which ``max_ejection_percent`` is counted; ``healthy`` says which of them may take
        traffic. The last healthy one is never ejected.
        """
        if not policy.enabled or key in self.ejected:
            return False
        count = self.failures[key] = self.failures.get(key, 0) + 1
        if count < policy.consecutive_5xx:
            return False
        out = sum(1 for sibling in siblings if sibling in self.ejected)
        allowed = max(1, math.floor(len(siblings) * policy.max_ejection_percent / 100))
        if out >= allowed:
            return False
        if not any(healthy(sibling) for sibling in siblings if sibling != key):
            return False
        self._eject(key, policy)
        return True

    def _eject(self, key: Key, policy: OutlierDetection) -> None:
        now = self._clock()
        base = policy.base_ejection_time_s
        past = self._history.pop(key, None)
        times = 1
        if past is not None:
            times += max(0, past.times - math.floor((now - past.back_at) / past.base_s))
        duration = min(base * times, max(policy.max_ejection_time_s, base))
        self.ejected[key] = _Ejection(now + duration, base)
        self._history[key] = _Record(times, now + duration, base)
        self.failures.pop(key, None)
        log.warning(
            "outlier ejection: %s %s/%s out for %gs (%d failures in a row, ejection %d in a row)",
            key[0],
            key[1].name,
            key[1].version,
            duration,
            policy.consecutive_5xx,
            times,
        )
        self._listener.ejected(key, times, duration)

    def is_ejected(self, key: Key) -> bool:
        """Whether ``key`` is out now; an ejection whose time is up ends here."""
        ejection = self.ejected.get(key)
        if ejection is None:
            return False
        if self._clock() < ejection.until:
            return True
        self._return(key, "timer")
        return False

    def expire(self) -> None:
        """End every ejection whose time is up (the periodic sweep; lookups also do it)."""
        now = self._clock()
        for key in [k for k, e in self.ejected.items() if now >= e.until]:
            self._return(key, "timer")

    def readiness_passed(self, key: Key) -> None:
        if key in self.ejected:
            self._return(key, "readiness")

    def _return(self, key: Key, reason: str) -> None:
        del self.ejected[key]
        record = self._history.get(key)
        if record is not None:
            record.back_at = self._clock()
        log.info("outlier ejection over (%s): %s %s/%s", reason, key[0], *_named(key))
        self._listener.returned(key, reason)


def _named(key: Key) -> tuple[str, str]:
    return key[1].name, key[1].version
