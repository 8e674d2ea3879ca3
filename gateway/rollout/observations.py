"""What the gates look at: the gateway's own metrics over a window, summed over every worker and
replica and split into candidate, baseline, shadow pairs and the noise pairs.

Metric sources (Prometheus, scraping) hand over *increases over the window* as samples of the
families below; ``summarize`` is pure.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.rollout.plan import Gates, NoisePair
from gateway.rollout.stats import Histogram
from gateway.rollout.textformat import Sample

REQUESTS = "gateway_requests_total"
RETRIED = "gateway_retried_attempts_total"
"""Attempts on a variant that failed and were retried on another: ``gateway_requests_total``
counts each request once, on the variant that finally answered, so a candidate whose failures
the retries hide would look clean without these."""
LATENCY = {
    "upstream": "gateway_upstream_duration_seconds",
    "request": "gateway_request_duration_seconds",
}
SHADOW = "gateway_shadow_requests_total"
SHADOW_DIFF = "gateway_shadow_max_abs_diff"
SHADOW_RESULTS = ("agree", "diverge", "error", "dropped")


def families(latency_metric: str) -> tuple[str, ...]:
    """The sample names a window holds (histograms by their ``_bucket`` lines)."""
    return (
        REQUESTS, RETRIED, f"{LATENCY[latency_metric]}_bucket", SHADOW, f"{SHADOW_DIFF}_bucket"
    )  # fmt: skip


@dataclass(frozen=True)
class Traffic:
    """One side's live requests in the window."""

    requests: int = 0
    errors: int = 0
    latency: Histogram = field(default_factory=Histogram.empty)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else math.nan

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "latency": {
                # JSON has no infinity: the +Inf bucket's bound is written as Prometheus does.
                "bounds": [b if math.isfinite(b) else "+Inf" for b in self.latency.bounds],
                "counts": list(self.latency.counts),
            },
        }

    @staticmethod
    def from_json(doc: dict[str, Any]) -> Traffic:
        latency = doc["latency"]
        histogram = Histogram(tuple(map(float, latency["bounds"])), tuple(latency["counts"]))
        return Traffic(int(doc["requests"]), int(doc["errors"]), histogram)


@dataclass(frozen=True)
class Agreement:
    """Shadow comparisons of some (primary, shadow) pairs in the window."""

    agree: int = 0
    diverge: int = 0
    error: int = 0
    dropped: int = 0
    max_abs_diff: Histogram = field(default_factory=Histogram.empty)

    @property
    def compared(self) -> int:
        return self.agree + self.diverge + self.error

    @property
    def divergent(self) -> int:
        """Diverging answers and errors on either side: both mean the pair did not agree."""
        return self.diverge + self.error

    @property
    def divergence_rate(self) -> float:
        return self.divergent / self.compared if self.compared else math.nan


@dataclass(frozen=True)
class Observations:
    candidate: Traffic
    baseline: Traffic
    shadow: Agreement
    noise: Agreement | None
    """None: no noise pair is configured (divergence is judged against zero)."""
    source: str = ""


def is_error(code: str, gates: Gates) -> bool:
    return any(
        code == pattern or (pattern.endswith("xx") and code[:1] == pattern[0])
        for pattern in gates.error_codes
    )


def traffic(samples: Iterable[Sample], variants: Sequence[str], gates: Gates) -> Traffic:
    wanted = set(variants)
    requests = errors = 0
    buckets: dict[float, float] = {}
    ignored = {str(code) for code in gates.ignored_codes}
    latency_name = f"{LATENCY[gates.latency_metric]}_bucket"
    for sample in samples:
        if sample.label("variant") not in wanted:
            continue
        if sample.name == REQUESTS:
            code = sample.label("code")
            if code in ignored:
                continue
            requests += round(sample.value)
            errors += round(sample.value) if is_error(code, gates) else 0
        elif sample.name == RETRIED:
            # Each a request's attempt that failed here: one more request, and an error.
            requests += round(sample.value)
            errors += round(sample.value)
        elif sample.name == latency_name:
            le = float(sample.label("le"))
            buckets[le] = buckets.get(le, 0.0) + sample.value
    latency = Histogram.from_cumulative(buckets) if buckets else Histogram.empty()
    return Traffic(requests, min(errors, requests), latency)


def agreement(samples: Iterable[Sample], pairs: Iterable[tuple[str, str]]) -> Agreement:
    wanted = set(pairs)
    results = dict.fromkeys(SHADOW_RESULTS, 0.0)
    buckets: dict[float, float] = {}
    for sample in samples:
        if (sample.label("primary"), sample.label("shadow")) not in wanted:
            continue
        if sample.name == SHADOW:
            result = sample.label("result")
            if result in results:
                results[result] += sample.value
        elif sample.name == f"{SHADOW_DIFF}_bucket":
            le = float(sample.label("le"))
            buckets[le] = buckets.get(le, 0.0) + sample.value
    diffs = Histogram.from_cumulative(buckets) if buckets else Histogram.empty()
    counts = {name: round(value) for name, value in results.items()}
    return Agreement(**counts, max_abs_diff=diffs)


def candidate_pairs(samples: Iterable[Sample], candidates: Sequence[str]) -> set[tuple[str, str]]:
    """Every (primary, shadow) pair in the window whose shadow is a candidate."""
    return {
        (s.label("primary"), s.label("shadow"))
        for s in samples
        if s.name == SHADOW and s.label("shadow") in candidates
    }


def summarize(
    samples: Sequence[Sample],
    candidates: Sequence[str],
    baseline: Sequence[str],
    noise: Sequence[NoisePair],
    gates: Gates,
    source: str = "",
) -> Observations:
    noise_pairs = [(pair.primary, pair.shadow) for pair in noise]
    return Observations(
        candidate=traffic(samples, candidates, gates),
        baseline=traffic(samples, baseline, gates),
        shadow=agreement(samples, candidate_pairs(samples, candidates)),
        noise=agreement(samples, noise_pairs) if noise_pairs else None,
        source=source,
    )
