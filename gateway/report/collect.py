"""What ``gateway report`` shows, gathered from live metrics: Prometheus over ``--since`` (and its
history, for the plots over time), or one scrape of every replica's ``/metrics`` (totals since
each replica's workers started; no history).

``build`` is pure: samples in, a ``Report`` out.
"""

from __future__ import annotations

import json
import math
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from gateway.rollout.observations import REQUESTS, SHADOW, SHADOW_DIFF, Agreement, agreement
from gateway.rollout.sources import PrometheusSource, http_get, label_matcher
from gateway.rollout.stats import Histogram
from gateway.rollout.textformat import Sample, select

__all__ = ["FAMILIES", "Report", "build", "from_prometheus", "from_scrape", "select"]

UPSTREAM = "gateway_upstream_duration_seconds_bucket"
END_TO_END = "gateway_request_duration_seconds_bucket"
OVERHEAD = "gateway_overhead_seconds_bucket"
FAMILIES = (REQUESTS, UPSTREAM, END_TO_END, SHADOW, f"{SHADOW_DIFF}_bucket")
"""The model's families (their lines carry ``model=``); the overhead's carry no model."""
ERROR_CLASSES = ("5",)
"""Status classes counted as errors in the report (a 4xx is the client's)."""

Points = list[tuple[float, float]]


@dataclass
class VariantReport:
    variant: str
    runtime: str = ""
    version: str = ""
    backend: str = ""
    requests: int = 0
    errors: int = 0
    upstream: Histogram = field(default_factory=Histogram.empty)
    end_to_end: Histogram = field(default_factory=Histogram.empty)
    accuracy: float | None = None
    """From a load test's labelled digits (``--loadtest-report``)."""
    labelled: int = 0

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else math.nan


@dataclass(frozen=True)
class PairReport:
    """Shadow comparisons of one (primary, shadow) pair."""

    primary: str
    shadow: str
    counts: Agreement

    @property
    def agreement(self) -> float:
        compared = self.counts.compared
        return self.counts.agree / compared if compared else math.nan


@dataclass
class Report:
    model: str
    source: str
    generated_at: float
    since_s: float | None
    """None: totals since the replicas started (scraping)."""
    variants: dict[str, VariantReport]
    runtimes: dict[str, VariantReport]
    overhead: dict[str, Histogram]
    """Per runtime, all models (the metric has no model label)."""
    pairs: list[PairReport]
    agreement_over_time: dict[str, Points] = field(default_factory=dict)
    p99_over_time: dict[str, Points] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _buckets(samples: Iterable[Sample], name: str, key: str) -> dict[str, Histogram]:
    found: dict[str, dict[float, float]] = {}
    for s in samples:
        if s.name == name:
            buckets = found.setdefault(s.label(key), {})
            le = float(s.label("le"))
            buckets[le] = buckets.get(le, 0.0) + s.value
    return {k: Histogram.from_cumulative(v) for k, v in found.items()}


def build(
    model: str, samples: Sequence[Sample], source: str, since_s: float | None, now: float
) -> Report:
    variants: dict[str, VariantReport] = {}
    for s in samples:
        if s.name != REQUESTS or not s.label("variant"):
            continue
        v = variants.setdefault(s.label("variant"), VariantReport(s.label("variant")))
        v.runtime, v.version, v.backend = s.label("runtime"), s.label("version"), s.label("backend")
        v.requests += round(s.value)
        v.errors += round(s.value) if s.label("code")[:1] in ERROR_CLASSES else 0
    for name, histogram in _buckets(samples, UPSTREAM, "variant").items():
        variants.setdefault(name, VariantReport(name)).upstream = histogram
    for name, histogram in _buckets(samples, END_TO_END, "variant").items():
        variants.setdefault(name, VariantReport(name)).end_to_end = histogram
    runtimes: dict[str, VariantReport] = {}
    for v in variants.values():
        r = runtimes.setdefault(v.runtime, VariantReport(v.runtime, runtime=v.runtime))
        r.requests += v.requests
        r.errors += v.errors
        r.upstream = r.upstream + v.upstream
        r.end_to_end = r.end_to_end + v.end_to_end
    keys = sorted(
        {(s.label("primary"), s.label("shadow")) for s in samples if s.name.startswith(SHADOW_DIFF)}
        | {(s.label("primary"), s.label("shadow")) for s in samples if s.name == SHADOW}
    )
    pairs = [PairReport(p, s, agreement(samples, [(p, s)])) for p, s in keys]
    return Report(
        model=model, source=source, generated_at=now, since_s=since_s,
        variants=dict(sorted(variants.items())), runtimes=dict(sorted(runtimes.items())),
        overhead=_buckets(samples, OVERHEAD, "runtime"), pairs=pairs,
    )  # fmt: skip


def prometheus_queries(model: str, seconds: int) -> dict[str, str]:
    where = f"model={label_matcher(model)}"

    def increase(metric: str, by: str, matcher: str = where) -> str:
        return f"sum by ({by}) (increase({metric}{{{matcher}}}[{seconds}s]))"

    return {
        REQUESTS: increase(REQUESTS, "variant, version, backend, runtime, code"),
        UPSTREAM: increase(UPSTREAM, "variant, le"),
        END_TO_END: increase(END_TO_END, "variant, le"),
        OVERHEAD: increase(OVERHEAD, "runtime, le", ""),
        SHADOW: increase(SHADOW, "primary, shadow, result"),
        f"{SHADOW_DIFF}_bucket": increase(f"{SHADOW_DIFF}_bucket", "primary, shadow, le"),
    }


def from_prometheus(url: str, model: str, since_s: float, now: float | None = None) -> Report:
    now = time.time() if now is None else now
    source = PrometheusSource(url)
    seconds = max(60, math.ceil(since_s))
    samples = []
    for name, promql in prometheus_queries(model, seconds).items():
        for series in source.query(promql, now):
            value = float(series["value"][1])
            if math.isfinite(value):
                samples.append(Sample(name, tuple(sorted(series["metric"].items())), value))
    report = build(model, samples, source.description, since_s, now)
    step = max(15, seconds // 120)
    window = max(4 * step, 60)
    where = f"model={label_matcher(model)}"
    shadow = f'{SHADOW}{{{where},result=~"agree|diverge|error"}}'
    agree = f'{SHADOW}{{{where},result="agree"}}'
    report.agreement_over_time = _range(
        source, now - seconds, now, step, lambda m: f"{m['primary']} / {m['shadow']}",
        f"sum by (primary, shadow) (increase({agree}[{window}s])) / "
        f"sum by (primary, shadow) (increase({shadow}[{window}s]))",
    )  # fmt: skip
    report.p99_over_time = _range(
        source, now - seconds, now, step, lambda m: m.get("variant", ""),
        f"histogram_quantile(0.99, sum by (variant, le) (rate({UPSTREAM}{{{where}}}"
        f"[{window}s])))",
    )  # fmt: skip
    return report


def _range(
    source: PrometheusSource,
    start: float,
    end: float,
    step: int,
    name: Callable[[dict[str, str]], str],
    promql: str,
) -> dict[str, Points]:
    params = urllib.parse.urlencode(
        {"query": promql, "start": f"{start:.0f}", "end": f"{end:.0f}", "step": f"{step}s"}
    )
    doc = json.loads(http_get(f"{source.url}/api/v1/query_range?{params}", 30.0))
    found: dict[str, Points] = {}
    for series in doc.get("data", {}).get("result", []):
        points = [(float(t), float(v)) for t, v in series["values"] if math.isfinite(float(v))]
        if points:
            found[name(series["metric"])] = points
    return found


def from_scrape(targets: Sequence[str], model: str, now: float | None = None) -> Report:
    now = time.time() if now is None else now
    samples: list[Sample] = []
    for target in targets:
        lines = http_get(target, 30.0).decode("utf-8", errors="replace").splitlines()
        samples += select(lines, FAMILIES, f"model={label_matcher(model)}")
        samples += select(lines, (OVERHEAD,))
    report = build(model, samples, f"scraping {', '.join(targets)}", None, now)
    report.notes.append(
        "totals since each replica's workers started (scraped); give --prometheus for a "
        "window and the plots over time"
    )
    return report
