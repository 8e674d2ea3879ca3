"""The gradient controller on simulated time and latencies: it measures the minimum round
trip with few calls in flight, shrinks when calls queue in the backend (down to one call at
a time, where it stays), grows when they do not, and measures the minimum again after a jittered
while, returning to its limit afterwards."""

from __future__ import annotations

import asyncio
import functools
import time

import pytest

from gateway.backends.base import BackendModel
from gateway.limits import CircuitBreaker
from gateway.limits.adaptive import (
    INTERVAL_S,
    MIN_CONCURRENCY,
    MIN_RTT_INTERVAL_S,
    MIN_RTT_JITTER,
    MIN_RTT_SAMPLES,
    GradientLimit,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def measured(
    clock: FakeClock, min_rtt: float, max_limit: int = 64, jitter: float = 0.0, lag: float = 0.0
) -> GradientLimit:
    controller = GradientLimit(max_limit, clock, lambda: jitter, lag=functools.partial(float, lag))
    assert controller.limit == MIN_CONCURRENCY
    for _ in range(MIN_RTT_SAMPLES):
        controller.sample(min_rtt)
    assert controller.min_rtt == min_rtt
    return controller


def queueing_backend_latency(limit: int, concurrency: int, service_s: float) -> float:
    """A backend that runs ``concurrency`` calls at once and queues the rest."""
    return service_s * max(1.0, limit / concurrency)


@pytest.mark.parametrize("lag", [0.0, 0.0015], ids=["idle loop", "busy loop"])
def test_it_settles_near_the_concurrency_of_a_backend_that_queues(lag):
    """Whatever the gateway's own loop waits: a queue in the backend is not the loop's."""
    clock = FakeClock()
    controller = measured(clock, 0.05, lag=lag)
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


def test_latency_that_is_the_gateways_own_loop_wait_does_not_shrink_it():
    """A saturated worker in front of a fast backend: 0.35 ms at 3 in flight, 1.2 ms at 30,
    all of it a loop pass of 1.5 ms in the gateway. Without the allowance the limit settles
    near 8 and most requests wait in the breaker for nothing."""
    for lag, settled in ((0.0015, range(60, 65)), (0.0, range(1, 17))):
        clock = FakeClock()
        controller = GradientLimit(64, clock, lambda: 0.0, lag=functools.partial(float, lag))
        for _ in range(MIN_RTT_SAMPLES):
            controller.sample(0.00035)
        for _ in range(50):
            clock.now += INTERVAL_S
            controller.sample(0.00035 + 0.00003 * min(controller.limit, 32))
        assert controller.limit in settled, (lag, controller.limit)
        assert controller.loop_lag == lag


def test_the_loop_is_asked_only_while_latency_is_above_the_target():
    clock = FakeClock()
    asked: list[float] = []

    def lag() -> float:
        asked.append(clock.now)
        return 0.0015

    controller = GradientLimit(64, clock, lambda: 0.0, lag=lag)
    for _ in range(MIN_RTT_SAMPLES):
        controller.sample(0.00035)
    for _ in range(20):  # a fast backend at a low rate: latency at its minimum
        clock.now += INTERVAL_S
        controller.sample(0.00036)
    assert not asked
    assert controller.loop_lag == 0.0
    clock.now += INTERVAL_S
    controller.sample(0.0012)  # a saturated worker
    assert asked == [clock.now]
    assert controller.loop_lag == 0.0015


def test_the_listener_hears_every_change_of_state():
    clock = FakeClock()
    heard: list[tuple[int, float | None, float | None]] = []
    controller = GradientLimit(
        64, clock, lambda: 0.0, listener=lambda c: heard.append((c.limit, c.min_rtt, c.sample_rtt))
    )
    for _ in range(MIN_RTT_SAMPLES):
        controller.sample(0.01)
    assert heard == [(MIN_CONCURRENCY, 0.01, None)], "the minimum measured, the limit restored"
    clock.now += INTERVAL_S
    controller.sample(0.01)
    assert heard[-1] == (controller.limit, 0.01, 0.01)
    assert controller.limit > MIN_CONCURRENCY
    controller.sample(0.01)
    assert len(heard) == 2, "within an interval nothing changes, and nothing is told"
    clock.now += MIN_RTT_INTERVAL_S * (1 + MIN_RTT_JITTER)
    controller.sample(0.01)
    limit, min_rtt, _ = heard[-1]
    assert limit == MIN_CONCURRENCY
    assert min_rtt is None, "measuring again: told so"


def grown(clock: FakeClock, controller: GradientLimit, rtt: float) -> None:
    for _ in range(20):
        clock.now += INTERVAL_S
        controller.sample(rtt)


def test_timeouts_shrink_it_by_half_an_interval_at_most():
    clock = FakeClock()
    controller = measured(clock, 0.05, max_limit=64)
    grown(clock, controller, 0.05)
    assert controller.limit == 64
    clock.now += INTERVAL_S
    controller.sample(1.0)  # a call that timed out after 1 s
    assert controller.limit == 37  # gradient clamped at 0.5: 32, plus sqrt(32) headroom


def test_a_backend_that_runs_one_call_at_a_time_gets_at_most_two_and_the_minimum_stands():
    clock = FakeClock()
    controller = measured(clock, 0.05)
    limits = []
    for _ in range(100):
        clock.now += INTERVAL_S
        controller.sample(queueing_backend_latency(controller.limit, 1, 0.05))
        limits.append(controller.limit)
    assert max(limits[-50:]) <= 2, limits[-50:]  # below MIN_CONCURRENCY, where Envoy stops
    assert controller.min_rtt == 0.05, "sitting low is the backend's concurrency: no new minimum"


def measuring(controller: GradientLimit) -> bool:
    return controller.min_rtt is None


def test_the_minimum_is_measured_again_after_a_jittered_interval_then_the_limit_returns():
    clock = FakeClock()
    controller = measured(clock, 0.05, jitter=1.0)  # the longest wait: 15% more
    grown(clock, controller, 0.05)
    assert controller.limit == 64
    clock.now += MIN_RTT_INTERVAL_S
    controller.sample(0.05)
    assert controller.min_rtt == 0.05, "measured again before the jitter ran out"
    clock.now += MIN_RTT_INTERVAL_S * MIN_RTT_JITTER
    controller.sample(0.05)
    assert measuring(controller)
    assert controller.limit == MIN_CONCURRENCY
    for _ in range(MIN_RTT_SAMPLES):
        controller.sample(5.0)  # calls sent before the measurement began: left out
    assert measuring(controller)
    clock.now += 0.04
    for _ in range(MIN_RTT_SAMPLES):
        controller.sample(0.04)
    assert controller.min_rtt == 0.04
    assert controller.limit == 64, "back to the limit it had before measuring"


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
