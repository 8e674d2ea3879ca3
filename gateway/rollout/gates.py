"""The gates: pure functions of a window's observations, each answering pass, fail or nodata.

"nodata" (Kayenta's NoData) is its own answer: too few samples, or bounds still too wide to
say either way. It is waited on, never taken for a pass or a failure. A gate fails only when
the data says, at the plan's confidence, that the candidate is past the threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from gateway.rollout.observations import Agreement, Observations, Traffic
from gateway.rollout.plan import Gates
from gateway.rollout.stats import Interval, rate_difference, wilson, z_score

Verdict = Literal["pass", "fail", "nodata"]


@dataclass(frozen=True)
class GateResult:
    gate: str
    verdict: Verdict
    value: float
    """The measured quantity (a rate difference, a latency ratio), NaN without data."""
    threshold: float
    low: float
    high: float
    """The bounds on ``value`` at the plan's confidence."""
    detail: str

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        for key in ("value", "threshold", "low", "high"):
            number = doc[key]
            doc[key] = number if math.isfinite(number) else None
        return doc


def _nodata(gate: str, threshold: float, detail: str) -> GateResult:
    return GateResult(gate, "nodata", math.nan, threshold, -math.inf, math.inf, detail)


def _bounded(
    gate: str, value: float, bounds: Interval, threshold: float, detail: str, more: str
) -> GateResult:
    """Fail when even the lower bound is past the threshold, pass when even the upper bound is
    within it; in between the data cannot tell yet (nodata, asking for ``more``)."""
    verdict: Verdict = "nodata"
    if bounds.low > threshold:
        verdict = "fail"
    elif bounds.high <= threshold:
        verdict = "pass"
    else:
        detail += f" (not yet sure: needs more {more})"
    return GateResult(gate, verdict, value, threshold, bounds.low, bounds.high, detail)


def error_rate(candidate: Traffic, baseline: Traffic, gates: Gates) -> GateResult:
    threshold = gates.max_error_rate_increase
    short = [
        f"{side} has {t.requests} of {gates.min_requests} requests"
        for side, t in (("candidate", candidate), ("baseline", baseline))
        if t.requests < gates.min_requests
    ]
    if short:
        return _nodata("error_rate", threshold, "; ".join(short))
    z = z_score(gates.confidence)
    bounds = rate_difference(
        candidate.errors, candidate.requests, baseline.errors, baseline.requests, z
    )
    value = candidate.error_rate - baseline.error_rate
    rates = (
        f"candidate {candidate.errors}/{candidate.requests} errors, "
        f"baseline {baseline.errors}/{baseline.requests}; difference {value:+.4f} "
        f"in [{bounds.low:+.4f}, {bounds.high:+.4f}], at most {threshold:+.4f}"
    )
    return _bounded("error_rate", value, bounds, threshold, rates, "requests")


def latency(candidate: Traffic, baseline: Traffic, gates: Gates) -> GateResult:
    """Fails when the candidate's quantile is, even at its lowest bound, beyond the baseline's
    highest bound times the ratio (or plus the slack). Bucket widths make the test blunt; they
    never make it abort a candidate that is within the threshold."""
    q, ratio = gates.latency_quantile, gates.max_latency_ratio
    name = f"p{q * 100:g}"
    short = [
        f"{side} has {t.latency.total} of {gates.min_requests} timed requests"
        for side, t in (("candidate", candidate), ("baseline", baseline))
        if t.latency.total < gates.min_requests
    ]
    if short:
        return _nodata("latency", ratio, "; ".join(short))
    z = z_score(gates.confidence)
    mine, theirs = candidate.latency.quantile_bounds(q, z), baseline.latency.quantile_bounds(q, z)
    if math.isinf(theirs.high):
        return _nodata("latency", ratio, f"the baseline's {name} is not bounded yet")
    estimate = candidate.latency.quantile(q) / max(baseline.latency.quantile(q), 1e-9)
    allowed = max(theirs.high * ratio, theirs.high + gates.latency_slack_s)
    low_ratio = mine.low / max(theirs.high, 1e-9)
    high_ratio = mine.high / max(theirs.low, 1e-9) if theirs.low > 0 else math.inf
    detail = (
        f"candidate {name} in [{mine.low * 1000:.2f}, {mine.high * 1000:.2f}] ms, baseline in "
        f"[{theirs.low * 1000:.2f}, {theirs.high * 1000:.2f}] ms; fails above "
        f"{allowed * 1000:.2f} ms"
    )
    verdict: Verdict = "fail" if mine.low > allowed else "pass"
    return GateResult("latency", verdict, estimate, ratio, low_ratio, high_ratio, detail)


def divergence(shadow: Agreement, noise: Agreement | None, gates: Gates) -> GateResult:
    threshold = gates.max_divergence_increase
    if shadow.compared < gates.min_comparisons:
        return _nodata(
            "divergence",
            threshold,
            f"candidate has {shadow.compared} of {gates.min_comparisons} shadow comparisons"
            f" ({shadow.dropped} dropped)",
        )
    z = z_score(gates.confidence)
    if noise is None:
        bounds = wilson(shadow.divergent, shadow.compared, z)
        value, against = shadow.divergence_rate, "no noise pair: against zero"
    elif noise.compared < gates.min_comparisons:
        return _nodata(
            "divergence",
            threshold,
            f"noise pair has {noise.compared} of {gates.min_comparisons} comparisons",
        )
    else:
        bounds = rate_difference(
            shadow.divergent, shadow.compared, noise.divergent, noise.compared, z
        )
        value = shadow.divergence_rate - noise.divergence_rate
        against = f"noise {noise.divergent}/{noise.compared}"
    detail = (
        f"candidate {shadow.divergent}/{shadow.compared} diverged, {against}; above noise "
        f"{value:+.4f} in [{bounds.low:+.4f}, {bounds.high:+.4f}], at most {threshold:+.4f}"
    )
    return _bounded("divergence", value, bounds, threshold, detail, "comparisons")


def abs_diff(shadow: Agreement, noise: Agreement | None, gates: Gates) -> GateResult | None:
    """The optional gate on the largest absolute output difference (``max_abs_diff_ratio``)."""
    ratio = gates.max_abs_diff_ratio
    if ratio is None or noise is None:
        return None
    mine, theirs = shadow.max_abs_diff, noise.max_abs_diff
    if min(mine.total, theirs.total) < gates.min_comparisons:
        return _nodata("max_abs_diff", ratio, "too few compared outputs")
    z = z_score(gates.confidence)
    low, high = mine.quantile_bounds(0.99, z), theirs.quantile_bounds(0.99, z)
    if math.isinf(high.high):
        return _nodata("max_abs_diff", ratio, "the noise pair's p99 is not bounded yet")
    estimate = mine.quantile(0.99) / max(theirs.quantile(0.99), 1e-12)
    verdict: Verdict = "fail" if low.low > high.high * ratio else "pass"
    detail = f"candidate p99 >= {low.low:.3g}, noise p99 <= {high.high:.3g}"
    return GateResult("max_abs_diff", verdict, estimate, ratio, low.low, high.high, detail)


def evaluate(
    names: Sequence[str], observed: Observations, gates: Gates, reference: Traffic | None = None
) -> list[GateResult]:
    """The gates ``names`` on one window. Without enough baseline traffic in the window (the
    candidates take all of it at 100% and in the bake), the baseline is ``reference``: its last
    window that had enough."""
    baseline = observed.baseline
    if baseline.requests < gates.min_requests and reference is not None:
        baseline = reference
    results = []
    for name in names:
        if name == "error_rate":
            results.append(error_rate(observed.candidate, baseline, gates))
        elif name == "latency":
            results.append(latency(observed.candidate, baseline, gates))
        elif name == "divergence":
            results.append(divergence(observed.shadow, observed.noise, gates))
            extra = abs_diff(observed.shadow, observed.noise, gates)
            if extra is not None:
                results.append(extra)
    return results


def overall(results: Sequence[GateResult]) -> Verdict:
    """fail if any failed, else nodata if any has no data, else pass."""
    verdicts = {result.verdict for result in results}
    if "fail" in verdicts:
        return "fail"
    return "nodata" if "nodata" in verdicts else "pass"
