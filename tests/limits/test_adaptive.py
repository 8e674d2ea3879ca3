"""The gradient controller on simulated time and latencies: it measures the minimum round
trip with few calls in flight, shrinks when calls queue in the backend, grows when they do not,
and measures the minimum again after a while."""

from __future__ import annotations

import asyncio
import time

from gateway.backends.base import BackendModel
from gateway.limits import CircuitBreaker
from gateway.limits.adaptive import (
    INTERVAL_S,
    MIN_CONCURRENCY,
    MIN_RTT_INTERVAL_S,
    MIN_RTT_SAMPLES,
    GradientLimit,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def measured(clock: FakeClock, min_rtt: float, max_limit: int = 64) -> GradientLimit:
    controller = GradientLimit(max_limit, clock)
    assert controller.limit == MIN_CONCURRENCY
    for _ in range(MIN_RTT_SAMPLES):
        controller.sample(min_rtt)
    assert controller.min_rtt == min_rtt
    return controller


def queueing_backend_latency(limit: int, concurrency: int, service_s: float) -> float:
    """A backend that runs ``concurrency`` calls at once and queues the rest."""
    return service_s * max(1.0, limit / concurrency)


def test_it_settles_near_the_concurrency_of_a_backend_that_queues():
    clock = FakeClock()
    controller = measured(clock, 0.05)
    limits = []
    for _ in range(100):
        clock.now += INTERVAL_S
        controller.sample(queueing_backend_latency(controller.limit, 2, 0.05))
        limits.append(controller.limit)
    assert all(2 <= limit <= 8 for limit in limits[-50:]), limits[-50:]


def test_it_grows_toward_the_ceiling_while_latency_stays_at_the_minimum():
    clock = FakeClock()
    controller = measured(clock, 0.01, max_limit=100)
    for _ in range(20):
        clock.now += INTERVAL_S
        controller.sample(0.01)
    assert controller.limit == 100


def test_timeouts_shrink_it_by_half_an_interval_at_most():
    clock = FakeClock()
    controller = measured(clock, 0.05, max_limit=64)
    for _ in range(20):
        clock.now += INTERVAL_S
        controller.sample(0.05)
    assert controller.limit == 64
    clock.now += INTERVAL_S
    controller.sample(1.0)  # a call that timed out after 1 s
    assert controller.limit == 64 // 2 + 8  # gradient clamped at 0.5, plus sqrt(64) headroom


def test_the_minimum_is_measured_again_with_few_calls_in_flight():
    clock = FakeClock()
    controller = measured(clock, 0.05)
    clock.now += MIN_RTT_INTERVAL_S
    controller.sample(0.05)
    assert controller.min_rtt is None
    assert controller.limit == MIN_CONCURRENCY


def test_the_breaker_admits_waiters_as_the_adaptive_limit_grows_and_holds_back_as_it_shrinks():
    async def scenario() -> None:
        target = BackendModel("m", "1")
        breaker = CircuitBreaker("b", 64, 100, adaptive=True)
        assert breaker.max_requests == MIN_CONCURRENCY
        deadline = time.monotonic() + 5
        for _ in range(MIN_CONCURRENCY):
            await breaker.acquire(target, deadline)
        waiting = [asyncio.ensure_future(breaker.acquire(target, deadline)) for _ in range(10)]
        await asyncio.sleep(0)
        assert breaker.pending == 10
        breaker._resize(8)  # as the controller would after fast calls
        await asyncio.sleep(0)
        assert breaker.active == 8
        assert breaker.pending == 5
        breaker._resize(2)
        for _ in range(6):
            breaker.release()  # 8 -> 2 in flight: none handed on
        assert breaker.active == 2
        assert breaker.pending == 5
        breaker.release()  # at the limit again: the slot passes on
        await asyncio.sleep(0)
        assert breaker.active == 2
        assert breaker.pending == 4
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)

    asyncio.run(scenario())
