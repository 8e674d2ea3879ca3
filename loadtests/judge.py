"""A finished run against its SLOs: Locust's CSVs and the variant file in, a verdict out.

Latency and failures per endpoint come from Locust's ``{prefix}_stats.csv`` (the numbers its
HTML report shows: Locust rounds response times under 100 ms to whole milliseconds), answers
that were not the model's own output from ``{prefix}_failures.csv``, and each variant's latency,
failures and accuracy from ``{prefix}_variants.json``. No Locust imported here.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

from loadtests.endpoints import ENDPOINTS, Endpoint
from loadtests.expected import MISMATCH
from loadtests.slo import DEFAULT, EndpointSlo, Slo
from loadtests.variant_stats import (
    NO_VARIANT,
    STATS_HEADER,
    VariantStats,
    by_runtime,
    extra_lines,
    read_variants,
    stats_line,
)


@dataclass(frozen=True)
class EndpointStats:
    requests: int = 0
    failures: int = 0
    mismatches: int = 0  # of the failures, answers that were not the model's own output
    p50_ms: float = math.nan
    p99_ms: float = math.nan

    @property
    def failure_ratio(self) -> float:
        return self.failures / self.requests if self.requests else math.nan


@dataclass(frozen=True)
class Results:
    endpoints: dict[str, EndpointStats]  # by endpoint key; an endpoint Locust never ran is absent
    variants: dict[str, VariantStats]  # by variant (NO_VARIANT: requests none answered)


@dataclass(frozen=True)
class EndpointRow:
    key: str
    stats: EndpointStats
    limits: EndpointSlo
    missed: list[str]


@dataclass(frozen=True)
class VariantRow:
    name: str
    stats: VariantStats
    min_accuracy: float
    missed: str


@dataclass
class Verdict:
    endpoints: list[EndpointRow]
    variants: list[VariantRow]
    all_variants: dict[str, VariantStats]  # as counted, NO_VARIANT included
    misses: list[str] = field(default_factory=list)

    @property
    def runtimes(self) -> dict[str, VariantStats]:
        return by_runtime(self.all_variants)

    @property
    def passed(self) -> bool:
        return not self.misses

    @property
    def table(self) -> str:
        return render_table(self)


def read_results(prefix: str) -> Results:
    """The run whose Locust reports start with ``prefix`` (as given to ``--csv``)."""
    by_name = {(e.request_type, e.name): e for e in ENDPOINTS.values()}
    mismatches: dict[str, int] = {}
    with Path(f"{prefix}_failures.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            endpoint = by_name.get((row["Method"], row["Name"]))
            if endpoint is not None and MISMATCH in row["Error"]:
                count = int(row["Occurrences"])
                mismatches[endpoint.key] = mismatches.get(endpoint.key, 0) + count
    endpoints: dict[str, EndpointStats] = {}
    with Path(f"{prefix}_stats.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            endpoint = by_name.get((row["Type"], row["Name"]))
            if endpoint is None:
                continue
            endpoints[endpoint.key] = EndpointStats(
                requests=int(row["Request Count"]),
                failures=int(row["Failure Count"]),
                mismatches=mismatches.get(endpoint.key, 0),
                p50_ms=_float(row["50%"]),
                p99_ms=_float(row["99%"]),
            )
    variants_path = Path(f"{prefix}_variants.json")
    variants = read_variants(variants_path) if variants_path.exists() else {}
    return Results(endpoints, variants)


def judge(results: Results, slo: Slo, endpoints: list[Endpoint]) -> Verdict:
    """Each of ``endpoints`` and every variant that answered, against ``slo``."""
    misses: list[str] = []
    endpoint_rows = []
    for endpoint in endpoints:
        stats = results.endpoints.get(endpoint.key, EndpointStats())
        limits = slo.endpoints[endpoint.key]
        missed = []
        if stats.requests == 0:
            missed.append("no requests")
        else:
            for metric, value, limit, show in (
                ("p50", stats.p50_ms, limits.p50_ms, _ms),
                ("p99", stats.p99_ms, limits.p99_ms, _ms),
                ("failure ratio", stats.failure_ratio, limits.max_failure_ratio, _percent),
            ):
                if not value <= limit:
                    missed.append(f"{metric} {show(value)} > {show(limit)}")
        misses.extend(f"{endpoint.key}: {miss}" for miss in missed)
        endpoint_rows.append(EndpointRow(endpoint.key, stats, limits, missed))
    answered = {k: v for k, v in results.variants.items() if k != NO_VARIANT}
    names = sorted(set(answered) | (set(slo.min_accuracy) - {DEFAULT}))
    if not names:
        misses.append("accuracy: no variant answered")
    variant_rows = []
    for name in names:
        served = answered.get(name, VariantStats())
        limit = slo.accuracy_for(name)
        if served.digits == 0:
            miss = "no digits answered"
        elif served.accuracy < limit:
            miss = f"accuracy {served.accuracy:.3f} < {limit:g}"
        else:
            miss = ""
        if miss:
            misses.append(f"{name}: {miss}")
        variant_rows.append(VariantRow(name, served, limit, miss))
    return Verdict(endpoint_rows, variant_rows, results.variants, misses)


def render_table(verdict: Verdict) -> str:
    """The verdict as the runner prints it: endpoints, then variants and runtimes."""
    lines = [
        f"{'endpoint':<16} {'requests':>8} {'p50 ms':>7} {'≤':>7} {'p99 ms':>7} {'≤':>7} "
        f"{'failures':>8} {'≤':>6} {'mismatch':>8}  result"
    ]
    for row in verdict.endpoints:
        s, limits = row.stats, row.limits
        lines.append(
            f"{row.key:<16} {s.requests:>8} {s.p50_ms:>7g} {limits.p50_ms:>7g} "
            f"{s.p99_ms:>7g} {limits.p99_ms:>7g} {s.failure_ratio:>8.2%} "
            f"{limits.max_failure_ratio:>6.1%} {s.mismatches:>8}  "
            + ("FAIL: " + "; ".join(row.missed) if row.missed else "PASS")
        )
    lines += ["", f"{STATS_HEADER} {'≥':>5}  result"]
    for vrow in verdict.variants:
        result = f"FAIL: {vrow.missed}" if vrow.missed else "PASS"
        lines.append(f"{stats_line(vrow.name, vrow.stats)} {vrow.min_accuracy:>5g}  {result}")
    lines += extra_lines(verdict.all_variants)
    return "\n".join(lines)


def _ms(value: float) -> str:
    return f"{value:g} ms"


def _percent(value: float) -> str:
    return f"{value:.2%}"


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan  # "N/A" when an endpoint has no requests
