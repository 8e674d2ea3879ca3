"""The circuit breaker in one event loop: slots, the bounded queue, deadlines, cancellation."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from gateway.backends.base import BackendModel
from gateway.errors import DeadlineExceeded, Overloaded
from gateway.limits import CircuitBreaker
from gateway.limits.estimate import FORGET_S, CallTimes

TARGET = BackendModel("m", "1")


def in_s(seconds: float) -> float:
    return time.monotonic() + seconds


def test_beyond_slots_and_queue_a_request_is_refused_at_once_naming_both_limits():
    async def scenario() -> tuple[list[float], str, float]:
        shed: list[tuple[str, str]] = []
        breaker = CircuitBreaker("slow", 2, 1, on_shed=lambda b, limit: shed.append((b, limit)))
        granted = [await breaker.acquire(TARGET, in_s(5)) for _ in range(2)]
        queued = asyncio.ensure_future(breaker.acquire(TARGET, in_s(5)))
        await asyncio.sleep(0)
        started = time.perf_counter()
        with pytest.raises(Overloaded) as refused:
            await breaker.acquire(TARGET, in_s(5))
        took = time.perf_counter() - started
        assert shed == [("slow", "max_pending_requests")]
        breaker.release()  # the slot passes to the queued request, in flight stays 2
        await queued
        assert breaker.active == 2
        assert breaker.pending == 0
        return granted, refused.value.message, took

    granted, message, took = asyncio.run(scenario())
    assert all(4.9 < left <= 5 for left in granted)
    assert "max_requests: 2" in message
    assert "max_pending_requests: 1" in message
    assert took < 0.005


def test_the_queue_is_first_in_first_out():
    async def scenario() -> list[int]:
        breaker = CircuitBreaker("b", 1, 10)
        await breaker.acquire(TARGET, in_s(5))
        order: list[int] = []

        async def wait(index: int) -> None:
            await breaker.acquire(TARGET, in_s(5))
            order.append(index)
            breaker.release()

        waiters = [asyncio.ensure_future(wait(i)) for i in range(5)]
        await asyncio.sleep(0)
        breaker.release()
        await asyncio.gather(*waiters)
        assert breaker.active == 0
        return order

    assert asyncio.run(scenario()) == [0, 1, 2, 3, 4]


def test_a_request_leaves_the_queue_unsent_when_its_deadline_could_no_longer_cover_a_call():
    async def scenario() -> tuple[float, str]:
        breaker = CircuitBreaker("b", 1, 10)
        breaker.observe(TARGET, 0.1)  # needs 100 ms + 2 x 50 ms deviation
        await breaker.acquire(TARGET, in_s(5))
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded) as late:
            await breaker.acquire(TARGET, in_s(0.3))
        waited = time.monotonic() - started
        breaker.release()
        assert breaker.active == 0
        assert breaker.pending == 0
        return waited, late.value.message

    waited, message = asyncio.run(scenario())
    assert 0.07 < waited < 0.2  # 300 ms of deadline minus the 200 ms a call needs
    assert "not sent" in message


def test_a_waiter_whose_wait_ran_out_is_passed_over_by_the_next_release():
    async def scenario() -> None:
        breaker = CircuitBreaker("b", 1, 10)
        await breaker.acquire(TARGET, in_s(5))
        early = asyncio.ensure_future(breaker.acquire(TARGET, in_s(0.05)))
        late = asyncio.ensure_future(breaker.acquire(TARGET, in_s(5)))
        with pytest.raises(DeadlineExceeded):
            await early
        assert breaker.pending == 1
        breaker.release()  # not to ``early``, which left: to ``late``
        assert await asyncio.wait_for(late, 1) > 4
        assert breaker.active == 1
        assert breaker.pending == 0

    asyncio.run(scenario())


def test_with_less_time_left_than_a_call_needs_a_free_slot_is_not_used():
    async def scenario() -> None:
        breaker = CircuitBreaker("b", 4, 4)
        breaker.observe(TARGET, 0.05)  # needs 100 ms
        with pytest.raises(DeadlineExceeded) as late:
            await breaker.acquire(TARGET, in_s(0.08))
        assert "takes about 100 ms" in late.value.message
        assert breaker.active == 0
        assert await breaker.acquire(TARGET, in_s(0.2)) > 0.1
        assert await breaker.acquire(BackendModel("other", "1"), in_s(0.02)) > 0  # unknown

    asyncio.run(scenario())


def test_a_refusal_for_too_little_time_reads_sub_millisecond_figures_and_a_passed_deadline():
    async def scenario() -> tuple[str, str]:
        breaker = CircuitBreaker("b", 4, 4)
        breaker.observe(TARGET, 0.0004)  # needs 0.8 ms
        with pytest.raises(DeadlineExceeded) as short:
            await breaker.acquire(TARGET, in_s(0.0005))
        with pytest.raises(DeadlineExceeded) as passed:
            await breaker.acquire(TARGET, in_s(-0.001))
        assert breaker.active == 0
        return short.value.message, passed.value.message

    short, passed = asyncio.run(scenario())
    left, needed = re.fullmatch(
        r"(0\.\d+) ms left before the deadline, and a call to backend 'b' takes about "
        r"(0\.\d+) ms: not sent",
        short,
    ).groups()  # type: ignore[union-attr]
    assert 0 < float(left) <= 0.5
    assert float(needed) == pytest.approx(0.8)
    assert passed == "the deadline passed before a call to backend 'b' could be sent: not sent"


def test_a_cancelled_waiter_takes_no_slot_even_when_handed_one_as_it_is_cancelled():
    async def scenario() -> None:
        breaker = CircuitBreaker("b", 1, 10)
        await breaker.acquire(TARGET, in_s(5))
        first = asyncio.ensure_future(breaker.acquire(TARGET, in_s(5)))
        second = asyncio.ensure_future(breaker.acquire(TARGET, in_s(5)))
        await asyncio.sleep(0)
        breaker.release()  # hands the slot to ``first``...
        first.cancel()  # ...which is cancelled before it runs: the slot goes to ``second``
        await asyncio.gather(first, return_exceptions=True)
        await asyncio.wait_for(second, 1)
        assert breaker.active == 1
        breaker.release()
        assert breaker.active == 0
        assert breaker.pending == 0

    asyncio.run(scenario())


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_call_needs_its_mean_plus_two_deviations_and_is_forgotten_when_none_succeed():
    clock = FakeClock()
    times = CallTimes(clock)
    assert times.needed(TARGET, clock.now) == 0.0
    times.observe(TARGET, 0.1)
    assert times.needed(TARGET, clock.now) == pytest.approx(0.2)
    for _ in range(200):
        times.observe(TARGET, 0.1)
    assert times.needed(TARGET, clock.now) == pytest.approx(0.1, abs=1e-6)  # steady: no deviation
    times.observe(TARGET, 0.9)
    # mean 0.2, deviation 0.2
    assert times.needed(TARGET, clock.now) == pytest.approx(0.2 + 2 * 0.2)
    clock.now += FORGET_S + 0.1
    assert times.needed(TARGET, clock.now) == 0.0  # slow once is not refused forever


def test_timeouts_after_queueing_refine_an_estimate_but_never_start_one():
    """A hung backend (every call times out, queued ones with what their wait left) must not
    teach the breaker to refuse: its requests keep their whole deadline (504 at the deadline)."""
    clock = FakeClock()
    breaker = CircuitBreaker("hung", 1, 10, clock=clock)

    def sent_with(left: float) -> bool:
        try:
            breaker.acquire_now(TARGET, clock.now + left)
        except DeadlineExceeded:
            return False
        breaker.release()
        return True

    for _ in range(20):
        breaker.timed_out(TARGET, 0.4, queued=True)
    assert sent_with(0.05)
    breaker.observe(TARGET, 0.1)  # it answers: now timeouts after queueing count
    breaker.timed_out(TARGET, 0.9, queued=True)  # mean 0.2, deviation 0.2375: needs 0.675 s
    assert not sent_with(0.67)
    assert sent_with(0.68)
    breaker.timed_out(TARGET, 5.0, queued=False)  # with its whole deadline: never counts
    assert sent_with(0.68)
    clock.now += FORGET_S + 0.1
    breaker.timed_out(TARGET, 0.4, queued=True)
    assert sent_with(0.05)


def test_a_success_feeds_the_estimate_and_hands_its_slot_to_the_first_waiter():
    async def scenario() -> None:
        breaker = CircuitBreaker("b", 1, 2)
        assert breaker.acquire_now(TARGET, in_s(5)) is not None
        assert breaker.acquire_now(TARGET, in_s(5)) is None  # the one slot is taken
        waiter = asyncio.ensure_future(breaker.acquire(TARGET, in_s(5)))
        await asyncio.sleep(0)
        breaker.succeeded(TARGET, 0.2)  # needs 200 ms + 2 x 100 ms from now on
        assert await waiter > 3.0
        assert breaker.active == 1  # passed on, not freed
        breaker.succeeded(TARGET, 0.2)  # the same again: the deviation shrinks to 75 ms
        assert breaker.active == 0
        with pytest.raises(DeadlineExceeded) as late:
            breaker.acquire_now(TARGET, in_s(0.3))
        assert "takes about 350 ms" in late.value.message
        assert breaker.active == 0  # the refused request holds no slot

    asyncio.run(scenario())
