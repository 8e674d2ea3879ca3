"""A finished run against its SLOs: Locust's CSVs and the accuracy file in, a verdict out.

Latency and failures come from Locust's ``{prefix}_stats.csv`` (the numbers its HTML report
shows: Locust rounds response times under 100 ms to whole milliseconds), wrong answers from
``{prefix}_failures.csv``, accuracy from ``{prefix}_accuracy.json``. No Locust imported here.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

from loadtests.accuracy import Tally, read_accuracy
from loadtests.endpoints import ENDPOINTS, Endpoint
from loadtests.slo import DEFAULT, Slo

WRONG_ANSWER = "wrong answer:"


@dataclass(frozen=True)
class EndpointStats:
    requests: int = 0
    failures: int = 0
    wrong_answers: int = 0
    p50_ms: float = math.nan
    p99_ms: float = math.nan

    @property
    def failure_ratio(self) -> float:
        return self.failures / self.requests if self.requests else math.nan


@dataclass(frozen=True)
class Results:
    endpoints: dict[str, EndpointStats]  # by endpoint key; an endpoint Locust never ran is absent
    accuracy: dict[str, Tally]  # by variant


@dataclass
class Verdict:
    table: str
    misses: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.misses


def read_results(prefix: str) -> Results:
    """The run whose Locust reports start with ``prefix`` (as given to ``--csv``)."""
    by_name = {(e.request_type, e.name): e for e in ENDPOINTS.values()}
    wrong: dict[str, int] = {}
    with Path(f"{prefix}_failures.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            endpoint = by_name.get((row["Method"], row["Name"]))
            if endpoint is not None and WRONG_ANSWER in row["Error"]:
                wrong[endpoint.key] = wrong.get(endpoint.key, 0) + int(row["Occurrences"])
    endpoints: dict[str, EndpointStats] = {}
    with Path(f"{prefix}_stats.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            endpoint = by_name.get((row["Type"], row["Name"]))
            if endpoint is None:
                continue
            endpoints[endpoint.key] = EndpointStats(
                requests=int(row["Request Count"]),
                failures=int(row["Failure Count"]),
                wrong_answers=wrong.get(endpoint.key, 0),
                p50_ms=_float(row["50%"]),
                p99_ms=_float(row["99%"]),
            )
    accuracy_path = Path(f"{prefix}_accuracy.json")
    accuracy = read_accuracy(accuracy_path) if accuracy_path.exists() else {}
    return Results(endpoints, accuracy)


def judge(results: Results, slo: Slo, endpoints: list[Endpoint]) -> Verdict:
    """Each of ``endpoints`` and every variant that answered, against ``slo``."""
    misses: list[str] = []
    lines = [
        f"{'endpoint':<16} {'requests':>8} {'p50 ms':>7} {'≤':>7} {'p99 ms':>7} {'≤':>7} "
        f"{'failures':>8} {'≤':>6} {'wrong':>6}  result"
    ]
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
        lines.append(
            f"{endpoint.key:<16} {stats.requests:>8} {stats.p50_ms:>7g} {limits.p50_ms:>7g} "
            f"{stats.p99_ms:>7g} {limits.p99_ms:>7g} {stats.failure_ratio:>8.2%} "
            f"{limits.max_failure_ratio:>6.1%} {stats.wrong_answers:>6}  "
            + ("FAIL: " + "; ".join(missed) if missed else "PASS")
        )
    lines += ["", f"{'variant':<16} {'digits':>8} {'accuracy':>8} {'≥':>7}  result"]
    variants = sorted(set(results.accuracy) | (set(slo.min_accuracy) - {DEFAULT}))
    if not variants:
        misses.append("accuracy: no variant answered")
    for variant in variants:
        tally = results.accuracy.get(variant, Tally())
        limit = slo.accuracy_for(variant)
        if tally.digits == 0:
            miss = "no digits answered"
        elif tally.accuracy < limit:
            miss = f"accuracy {tally.accuracy:.3f} < {limit:g}"
        else:
            miss = ""
        if miss:
            misses.append(f"{variant}: {miss}")
        lines.append(
            f"{variant:<16} {tally.digits:>8} {tally.accuracy:>8.3f} {limit:>7g}  "
            + (f"FAIL: {miss}" if miss else "PASS")
        )
    return Verdict("\n".join(lines), misses)


def _ms(value: float) -> str:
    return f"{value:g} ms"


def _percent(value: float) -> str:
    return f"{value:.2%}"


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan  # "N/A" when an endpoint has no requests
