"""The worker's own event-loop wait, measured on a real loop: about nothing when idle, about a
pass when every pass is busy, and only when asked (an idle worker is not woken)."""

from __future__ import annotations

import asyncio
import time

from gateway.limits.loop_lag import MAX_AGE_S, PROBES, LoopLag


async def _settled(lag: LoopLag) -> float:
    lag.read()
    for _ in range(PROBES + 1):
        await asyncio.sleep(0)
    return lag.read()


def test_an_idle_loop_waits_about_nothing():
    lag = LoopLag()
    assert lag.read() == 0.0, "outside a running loop: nothing measured, nothing started"
    assert asyncio.run(_settled(lag)) < 0.002


def test_a_busy_loop_waits_about_a_pass():
    async def scenario() -> float:
        stop = False

        def busy() -> None:  # another ready callback that holds every pass for 5 ms
            time.sleep(0.005)
            if not stop:
                loop.call_soon(busy)

        loop = asyncio.get_running_loop()
        loop.call_soon(busy)
        lag = LoopLag()
        lag.read()
        for _ in range(PROBES + 2):
            await asyncio.sleep(0)
        stop = True
        return lag.read()

    assert 0.004 <= asyncio.run(scenario()) < 0.05


def test_it_measures_only_when_read():
    async def scenario() -> list[float]:
        calls: list[float] = []

        def clock() -> float:
            calls.append(time.monotonic())
            return calls[-1]

        lag = LoopLag(clock)
        await asyncio.sleep(0.02)
        assert not calls, "no probe before the first read"
        lag.read()
        await asyncio.sleep(0.02)
        probed = len(calls)
        await asyncio.sleep(0.02)
        assert len(calls) == probed == PROBES + 1, "one run of probes, then quiet"
        return calls

    asyncio.run(scenario())


def test_a_reading_older_than_its_max_age_says_nothing():
    async def scenario() -> tuple[float, float, float]:
        now = [100.0]
        lag = LoopLag(lambda: now[0])
        lag.read()
        for _ in range(PROBES):
            now[0] += 0.002  # every pass takes 2 ms
            await asyncio.sleep(0)
        fresh = lag.read()  # also starts the next run, which this loop never lets finish
        now[0] += MAX_AGE_S + 0.01
        stale = lag.read()
        for _ in range(PROBES + 1):
            await asyncio.sleep(0)
        return fresh, stale, lag.read()

    fresh, stale, again = asyncio.run(scenario())
    assert abs(fresh - 0.002) < 1e-9
    assert stale == 0.0
    assert again == 0.0, "measured anew: this loop's passes take no time on its clock"
