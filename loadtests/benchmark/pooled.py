"""Percentiles of several wrk runs taken together, from each run's tail quantiles.

The p99 of one 5 s run at 200 req/s is its tenth slowest request: two runs of the same gateway
differ by tens of percent, and a median over rounds of such figures still moves more than the
5% a target allows. Pooled, eight rounds give the p99 of 8,000 requests. Each run's
distribution function is known above its 90th percentile (the quantiles ``wrk.py`` has it
print, joined by straight lines); the pool's is their average weighted by request count, and
its percentile is found by bisection. Drift in the machine's load still falls on every target
alike when the rounds alternate.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Callable, Sequence

from loadtests.benchmark.wrk import WrkResult

LOWEST = 90.0
"""Pooled percentiles are asked for from here up: below it, the runs' shapes are not known."""


def share_below(tail: Sequence[tuple[float, float]], ms: float) -> float:
    """The run's share of requests at or under ``ms``, from its (percentile, ms) points.

    Below the run's lowest point the share is taken along a line to (0 ms, 0): a run that
    slow (its 90th percentile above the pool's p99) only makes the pooled figure conservative.
    """
    values = [v for _, v in tail]
    at = bisect_right(values, ms)
    if at == 0:
        low_p, low_v = tail[0]
        return low_p / 100.0 * (ms / low_v if low_v > 0 else 1.0)
    if at == len(tail):
        return 1.0
    (p0, v0), (p1, v1) = tail[at - 1], tail[at]
    if v1 == v0:
        return p1 / 100.0
    return (p0 + (p1 - p0) * (ms - v0) / (v1 - v0)) / 100.0


def pooled_percentile(results: Sequence[WrkResult], percentile: float) -> float:
    """The ``percentile`` (90-100) of all the runs' requests together, in ms."""
    if not LOWEST <= percentile <= 100.0:
        raise ValueError(f"pooled percentiles are known from {LOWEST} up, not {percentile}")
    runs = [(r.requests, r.tail) for r in results if r.tail and r.requests > 0]
    if not runs or len(runs) < len(results):
        raise ValueError("every run needs its tail quantiles and request count (wrk.py's script)")
    total = sum(n for n, _ in runs)
    wanted = percentile / 100.0

    def share(ms: float) -> float:
        return sum(n * share_below(tail, ms) for n, tail in runs) / total

    low = min(tail[0][1] for _, tail in runs)
    high = max(tail[-1][1] for _, tail in runs)
    if share(low) >= wanted:
        return low
    for _ in range(60):
        middle = (low + high) / 2
        if share(middle) >= wanted:
            high = middle
        else:
            low = middle
    return high


def round_interval(
    rounds: int,
    statistic: Callable[[Sequence[int]], float],
    draws: int = 400,
    seed: int = 0,
) -> tuple[float, float]:
    """The 5th and 95th percentiles of ``statistic`` over the rounds drawn again with
    replacement (a bootstrap over rounds: each draw keeps a round's targets together, so what
    the machine did in that round stays paired)."""
    rng = random.Random(seed)
    values = sorted(statistic([rng.randrange(rounds) for _ in range(rounds)]) for _ in range(draws))
    return values[int(0.05 * (draws - 1))], values[int(0.95 * (draws - 1))]
