"""The statistics behind the gates: bounds that hold at a stated confidence, never point guesses.

- A rate (errors per request, divergences per comparison): Wilson's score interval, and for a
  difference of two rates Newcombe's hybrid score interval (his method 10), which stays sensible
  at 0 events and small counts where the normal approximation does not.
- A quantile (p99) from a Prometheus histogram: a distribution-free interval from order
  statistics. The number of samples at or below the true quantile is Binomial(n, q), so the
  ranks ``l`` and ``u`` around ``n q`` bracket it at the confidence asked; the histogram only says
  which bucket those ranks fall in, so the lower bound is the lower edge of rank ``l``'s bucket
  and the upper bound the upper edge of rank ``u``'s. Bucket width and sampling noise both widen
  the interval: it never claims more than the data holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist


def z_score(confidence: float) -> float:
    """The one-sided standard normal quantile: 1.645 at 0.95."""
    return NormalDist().inv_cdf(confidence)


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


def wilson(events: int, trials: int, z: float) -> Interval:
    """Wilson's score interval for a proportion (each side one-sided at ``z``)."""
    if trials <= 0:
        return Interval(0.0, 1.0)
    p = events / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return Interval(max(0.0, centre - half), min(1.0, centre + half))


def rate_difference(
    events_a: int, trials_a: int, events_b: int, trials_b: int, z: float
) -> Interval:
    """Newcombe's hybrid score interval for ``p_a - p_b``."""
    p_a, p_b = events_a / trials_a, events_b / trials_b
    a, b = wilson(events_a, trials_a, z), wilson(events_b, trials_b, z)
    difference = p_a - p_b
    low = difference - math.sqrt((p_a - a.low) ** 2 + (b.high - p_b) ** 2)
    high = difference + math.sqrt((a.high - p_a) ** 2 + (p_b - b.low) ** 2)
    return Interval(low, high)


@dataclass(frozen=True)
class Histogram:
    """Counts per bucket (not cumulative); ``bounds`` are the buckets' upper edges, ascending,
    the last one ``inf``. The lower edge of the first bucket is 0 (durations, differences)."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.counts)

    @staticmethod
    def empty(bounds: tuple[float, ...] = (math.inf,)) -> Histogram:
        return Histogram(bounds, (0,) * len(bounds))

    @staticmethod
    def from_cumulative(buckets: dict[float, float]) -> Histogram:
        """From Prometheus' ``le`` -> cumulative count (as scraped or as ``increase`` gives it)."""
        bounds = tuple(sorted(buckets))
        if not bounds or bounds[-1] != math.inf:
            bounds = (*bounds, math.inf)
        counts, below = [], 0
        for le in bounds:
            # increase() extrapolates, so cumulative counts may dip; never count below zero.
            cumulative = max(round(buckets.get(le, below)), below)
            counts.append(cumulative - below)
            below = cumulative
        return Histogram(bounds, tuple(counts))

    def __add__(self, other: Histogram) -> Histogram:
        if not self.total:
            return other
        if not other.total:
            return self
        if self.bounds != other.bounds:
            raise ValueError("histograms with different buckets cannot be added")
        return Histogram(
            self.bounds, tuple(a + b for a, b in zip(self.counts, other.counts, strict=True))
        )

    def _bucket_of_rank(self, rank: int) -> int:
        seen = 0
        for index, count in enumerate(self.counts):
            seen += count
            if seen >= rank:
                return index
        return len(self.counts) - 1

    def _lower_edge(self, index: int) -> float:
        return self.bounds[index - 1] if index > 0 else 0.0

    def quantile(self, q: float) -> float:
        """A point estimate, interpolated inside the bucket (as ``histogram_quantile`` does)."""
        n = self.total
        if n == 0:
            return math.nan
        rank = q * n
        seen = 0
        for index, count in enumerate(self.counts):
            if count and seen + count >= rank:
                low, high = self._lower_edge(index), self.bounds[index]
                if math.isinf(high):
                    return low
                return low + (high - low) * (rank - seen) / count
            seen += count
        return self._lower_edge(len(self.counts) - 1)

    def quantile_bounds(self, q: float, z: float) -> Interval:
        """Where the true ``q`` quantile lies, at the confidence of ``z`` on each side.

        ``high`` is ``inf`` while there are too few samples above the quantile to bound it (a
        p99 needs a few hundred samples), or when rank ``u`` falls in the ``+Inf`` bucket.
        """
        n = self.total
        if n == 0:
            return Interval(0.0, math.inf)
        spread = z * math.sqrt(n * q * (1 - q))
        # One rank of margin each side for the normal approximation of the binomial.
        low_rank = math.floor(n * q - spread) - 1
        high_rank = math.ceil(n * q + spread) + 1
        low = self._lower_edge(self._bucket_of_rank(low_rank)) if low_rank >= 1 else 0.0
        high = self.bounds[self._bucket_of_rank(high_rank)] if high_rank <= n else math.inf
        return Interval(low, high)
