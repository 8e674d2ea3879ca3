"""Retries on another variant, within the request's deadline and a per-backend retry budget.

Only failures before any reply byte are retried (a refused or reset connection, a 503 or
UNAVAILABLE answer), and an attempt that ran out of its ``per_try_timeout_s``; never a 4xx,
never past the deadline, never a request pinned to its variant. The retry goes to a variant of
the same selection not tried yet, healthy unless none is (panic): a sticky key to its next
rendezvous choice, others by weight.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from gateway.config_resilience import RetryBackOff, RetryBudget
from gateway.errors import BackendDroppedReply, BackendTimeout, BackendUnavailable, GatewayError
from gateway.routing.router import Selection, Variant


@dataclass(slots=True)
class _Counts:
    active: int = 0
    retries: int = 0


class RetryBudgets:
    """Requests and retries in flight to each backend, per worker (Envoy's ``retry_budget``)."""

    def __init__(self) -> None:
        self._counts: dict[str, _Counts] = {}

    def counts(self, backend: str) -> _Counts:
        try:
            return self._counts[backend]
        except KeyError:
            counts = self._counts[backend] = _Counts()
            return counts

    def admits(self, backend: str, budget: RetryBudget) -> bool:
        counts = self.counts(backend)
        limit = max(budget.min_retry_concurrency, budget.budget_percent / 100 * counts.active)
        return counts.retries < limit


def retry_reason(error: GatewayError, per_try_limited: bool) -> str | None:
    """Why ``error`` may be retried (a metric label), or None when it may not."""
    if isinstance(error, BackendUnavailable) and not isinstance(error, BackendDroppedReply):
        return "unavailable"
    if isinstance(error, BackendTimeout) and per_try_limited:
        return "per_try_timeout"
    return None


def back_off(policy: RetryBackOff, retry: int) -> float:
    """Envoy's fully jittered exponential back-off before the ``retry``-th retry (from 1)."""
    ceiling = min(policy.max_interval_s, policy.base_interval_s * (2**retry - 1))
    return random.uniform(0.0, ceiling)


def next_variant(
    selection: Selection,
    tried: list[Variant],
    sticky_key: str | None,
    healthy: Callable[[Variant], bool] | None,
) -> Variant | None:
    """A variant of ``selection`` not tried yet: healthy ones first; the others only when no
    variant with weight is healthy (panic)."""
    split = selection.split

    def untried(variant: Variant) -> bool:
        return variant not in tried

    if healthy is None:
        return split.pick_among(untried, sticky_key)

    def untried_healthy(variant: Variant) -> bool:
        return variant not in tried and healthy(variant)

    chosen = split.pick_among(untried_healthy, sticky_key)
    if chosen is None and split.pick_among(healthy) is None:
        chosen = split.pick_among(untried, sticky_key)
    return chosen
