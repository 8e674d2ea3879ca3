"""wrk results made from latency samples, as wrk would report them, for the pooling tests."""

from loadtests.benchmark.wrk import TAIL_PERCENTILES, WrkResult


def run_of(samples: list[float], seconds: float = 5.0) -> WrkResult:
    """A run of ``samples`` (ms) over ``seconds``: the p-th percentile is the sample at index
    ``p% of the count`` (so with exactly 1% of samples slow, the 99th is the first slow one)."""
    ordered = sorted(samples)

    def at(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    tail = tuple((p, at(p)) for p in TAIL_PERCENTILES)
    return WrkResult(len(samples) / seconds, at(50), at(90), at(99), 0, len(samples), tail)
