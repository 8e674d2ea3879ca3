"""The worker's own event-loop wait, measured on a real loop: about nothing when idle, about a
pass when every pass is busy, and only when asked (an idle worker is not woken)."""

from __future__ import annotations

import asyncio
import time

from gateway.limits.loop_lag import PROBES, LoopLag


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
