"""Every metric the gateway exports, defined once on an injected registry.

With several worker processes ``PROMETHEUS_MULTIPROC_DIR`` is set before any worker starts; values
then live in per-process files and the exposition merges them, so ``/metrics`` is right whichever
worker answers the scrape. No ``_created`` series: Prometheus does not need them, and they were a
third of all lines.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.backends.base import BackendModel
from gateway.exposition.config_version import ConfigVersionCollector
from gateway.exposition.scrape import Exposition
from gateway.exposition.text import header, labels_text, value_text
from gateway.limits.adaptive import GradientLimit
from gateway.routing.router import Variant

if TYPE_CHECKING:
    from gateway.tracing.trace import Trace

# Seconds; fine at the bottom, where gateway overhead and loopback backends live.
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.0025, 0.005, 0.0075,
    0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
# Absolute output differences: float32 noise sits near 1e-7, a wrong class near 0.1-1.
DIFF_BUCKETS = (
    1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.1, 0.25, 0.5, 1.0, 10.0,
)  # fmt: skip
OVERHEAD_BUCKETS = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00015, 0.0002, 0.0003, 0.0005, 0.00075,
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.1,
)  # fmt: skip


@dataclass(slots=True)
class RequestRecord:
    """What one request did, filled in as it goes and reported once at the end."""

    protocol: str
    started: float
    model: str = ""
    variant: Variant | None = None
    upstream_s: float | None = None
    trace: Trace | None = None
    """Set by the front end when tracing is on."""
    attempts: int = 0
    """Backend calls made for the request (more than one: it was retried)."""
    shadowed: bool = False
    """The request was also sent to a shadow variant."""
    bytes_in: int = 0
    bytes_out: int = 0
    origin: object = None
    """The ASGI scope or a gRPC origin: read only if an access-log line is written."""
    request_id: str | None = None
    """The inference request's own id (``x-request-id`` wins in the access log)."""
    error: str | None = None
    """The message the client got, when it got an error."""


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = registry
        self.requests = Counter(
            "gateway_requests",
            "Requests by outcome; code is the HTTP status (gRPC front ends: its HTTP equivalent).",
            ["model", "version", "variant", "backend", "runtime", "protocol", "code"],
            registry=registry,
        )
        self.request_duration = Histogram(
            "gateway_request_duration_seconds",
            "End-to-end time from request arrival to response written into the socket buffer.",
            ["model", "version", "variant", "backend", "runtime", "protocol"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.upstream_duration = Histogram(
            "gateway_upstream_duration_seconds",
            "Time spent waiting for the backend call.",
            ["model", "version", "variant", "backend", "runtime"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.overhead = Histogram(
            "gateway_overhead_seconds",
            "Per-request gateway time: end-to-end minus upstream.",
            ["backend", "runtime", "protocol"],
            buckets=OVERHEAD_BUCKETS,
            registry=registry,
        )
        self.inflight = Gauge(
            "gateway_inflight_requests",
            "Backend calls under way.",
            ["backend", "runtime"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.shed = Counter(
            "gateway_shed_requests",
            "Requests refused before any backend saw them, by the limit that refused them "
            "(max_requests, max_pending_requests, deadline; max_concurrent_requests with "
            'backend "").',
            ["backend", "limit"],
            registry=registry,
        )
        self.worker_start = Gauge(
            "gateway_worker_start_time_seconds",
            "Start time of each live worker process (one series per pid when there are several).",
            multiprocess_mode="liveall",
            registry=registry,
        )
        self.worker_start.set_to_current_time()
        self.retries = Counter(
            "gateway_retries",
            "Backend calls retried on another variant; backend is where the retry went, reason "
            "why the attempt before it failed (unavailable, per_try_timeout).",
            ["model", "backend", "reason"],
            registry=registry,
        )
        self.retried_attempts = Counter(
            "gateway_retried_attempts",
            "Attempts that failed on a variant and were retried on another (the request is "
            "counted once, where it was answered; the rollout gates count these too).",
            ["model", "variant", "backend", "runtime", "reason"],
            registry=registry,
        )
        self.retry_budget_exhausted = Counter(
            "gateway_retry_budget_exhausted",
            "Retries not made because the retry budget of the backend they would go to was spent.",
            ["model", "backend"],
            registry=registry,
        )
        self.outlier_ejections = Counter(
            "gateway_outlier_ejections",
            "Outlier ejections of a backend model version (consecutive failures).",
            ["backend", "backend_model", "version"],
            registry=registry,
        )
        self.outlier_unejections = Counter(
            "gateway_outlier_unejections",
            "Ends of outlier ejections; reason: timer or readiness (a passing probe).",
            ["backend", "backend_model", "version", "reason"],
            registry=registry,
        )
        self.outlier_ejections_active = Gauge(
            "gateway_outlier_ejections_active",
            "Backend model versions ejected now (summed over workers: each ejects on its own).",
            ["backend"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        # Envoy's gradient controller stats, one series per worker: each has its own limit.
        self.adaptive_limit = Gauge(
            "gateway_adaptive_concurrency_limit",
            "Calls in flight the adaptive concurrency limit admits to a backend (Envoy's "
            "concurrency_limit), per worker.",
            ["backend"],
            multiprocess_mode="liveall",
            registry=registry,
        )
        self.adaptive_min_rtt = Gauge(
            "gateway_adaptive_concurrency_min_rtt_seconds",
            "The backend's minimum latency as last measured, with few calls in flight (Envoy's "
            "min_rtt_msecs), per worker; NaN while it is being measured.",
            ["backend"],
            multiprocess_mode="liveall",
            registry=registry,
        )
        self.adaptive_sample_rtt = Gauge(
            "gateway_adaptive_concurrency_sample_rtt_seconds",
            "Median latency of the calls in the controller's last interval (Envoy's "
            "sample_rtt_msecs), per worker.",
            ["backend"],
            multiprocess_mode="liveall",
            registry=registry,
        )
        self.adaptive_loop_lag = Gauge(
            "gateway_adaptive_concurrency_loop_lag_seconds",
            "The worker's own event-loop wait that the last update allowed for on top of the "
            "minimum latency (it is not the backend's queue), per worker.",
            ["backend"],
            multiprocess_mode="liveall",
            registry=registry,
        )
        self.adaptive_measuring = Gauge(
            "gateway_adaptive_concurrency_min_rtt_calculation_active",
            "1 while the minimum latency is being measured (the limit is then 3), per worker.",
            ["backend"],
            multiprocess_mode="liveall",
            registry=registry,
        )
        self.shadow_requests = Counter(
            "gateway_shadow_requests",
            "Shadow copies by outcome: agree, diverge (beyond tolerance and noise), error (either"
            " side failed) or dropped (no room in the shadow pool).",
            ["model", "primary", "shadow", "result"],
            registry=registry,
        )
        self.shadow_max_abs_diff = Histogram(
            "gateway_shadow_max_abs_diff",
            "Largest absolute difference between the primary's and the shadow's outputs.",
            ["model", "primary", "shadow"],
            buckets=DIFF_BUCKETS,
            registry=registry,
        )
        self._children: dict[tuple[Any, ...], Any] = {}
        self._inflight_id = id(self.inflight)
        # (variant, model, protocol, status) -> the four series a finished request updates:
        # one lookup a request instead of four. Emptied by forget (every routing change).
        self._request_series: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self.exposition = Exposition(
            [
                self.requests,
                self.request_duration,
                self.upstream_duration,
                self.overhead,
                self.inflight,
                self.shed,
                self.worker_start,
                self.retries,
                self.retried_attempts,
                self.retry_budget_exhausted,
                self.outlier_ejections,
                self.outlier_unejections,
                self.outlier_ejections_active,
                self.adaptive_limit,
                self.adaptive_min_rtt,
                self.adaptive_sample_rtt,
                self.adaptive_loop_lag,
                self.adaptive_measuring,
                self.shadow_requests,
                self.shadow_max_abs_diff,
            ],
            os.environ.get("PROMETHEUS_MULTIPROC_DIR"),
        )
        self.config_version = ConfigVersionCollector(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.exposition.add(self.config_version)

    def _child(self, metric: Any, *labels: str) -> Any:
        # labels() takes a lock and re-validates on every call; requests reuse their children.
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def _drop(self, metric: Any, *labels: str) -> None:
        """Remove a series and its cached child, if it had one."""
        self._children.pop((id(metric), *labels), None)
        with contextlib.suppress(KeyError):
            metric.remove(*labels)

    def watch_variants(self, collector: VariantCollector) -> None:
        """Export the catalog's weights and readiness, read at scrape time."""
        self.registry.register(collector)
        self.exposition.add(collector)

    def forget(self, variants: set[tuple[str, str, str, str, str]], backends: set[str]) -> int:
        """Remove the series of variants ``(model, version, variant, backend, runtime)`` (their
        shadow pairs too) and of backends no longer routed to; returns how many went. (With
        several workers the values live in files that only grow: those series go when the
        worker is replaced.)"""
        by_variant = (self.requests, self.request_duration, self.upstream_duration)
        by_backend = (self.overhead, self.inflight)
        by_pair = (self.shadow_requests, self.shadow_max_abs_diff)  # (model, primary, shadow)
        metrics = {id(metric): metric for metric in (*by_variant, *by_backend, *by_pair)}
        self._request_series.clear()
        names = {(model, name) for model, _, name, _, _ in variants}
        gone = 0
        for key in list(self._children):
            metric = metrics.get(key[0])
            if metric is None:
                continue
            labels = key[1:]
            if metric in by_pair:
                model, primary, shadow = labels[:3]
                stale = (model, primary) in names or (model, shadow) in names
            else:
                stale = labels[:5] in variants if metric in by_variant else labels[0] in backends
            if stale:
                self._drop(metric, *labels)
                gone += 1
        return gone

    def shadow_result(
        self, model: str, primary: str, shadow: str, result: str, count: int = 1
    ) -> None:
        self._child(self.shadow_requests, model, primary, shadow, result).inc(count)

    def shadow_diff(self, model: str, primary: str, shadow: str, value: float) -> None:
        self._child(self.shadow_max_abs_diff, model, primary, shadow).observe(value)

    def inflight_value(self, backend: str, runtime: str) -> Any:
        """The value behind a backend's in-flight gauge: ``inc(1)`` / ``inc(-1)`` around each
        call (the gauge's own inc and dec re-check it is observable every time)."""
        # _child, inline: this one is looked up for every backend call.
        key = (self._inflight_id, backend, runtime)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.inflight.labels(backend, runtime)
        return child._value

    def retried(self, model: str, backend: str, reason: str) -> None:
        self._child(self.retries, model, backend, reason).inc()

    def attempt_retried(self, model: str, failed: Variant, reason: str) -> None:
        """``failed``'s attempt of a request is being retried on another variant."""
        backend = failed.backend
        labels = (model, failed.name, backend.name, backend.runtime, reason)
        self._child(self.retried_attempts, *labels).inc()

    def retry_budget_spent(self, model: str, backend: str) -> None:
        self._child(self.retry_budget_exhausted, model, backend).inc()

    def ejected(self, backend: str, target: BackendModel) -> None:
        self._child(self.outlier_ejections, backend, target.name, target.version).inc()
        self._child(self.outlier_ejections_active, backend).inc()

    def returned(self, backend: str, target: BackendModel, reason: str) -> None:
        labels = (backend, target.name, target.version, reason)
        self._child(self.outlier_unejections, *labels).inc()
        self._child(self.outlier_ejections_active, backend).dec()

    def adaptive(self, backend: str, controller: GradientLimit | None) -> None:
        """A backend's adaptive limit changed (``None``: the backend, or its limit, is gone)."""
        gauges = (
            self.adaptive_limit,
            self.adaptive_min_rtt,
            self.adaptive_sample_rtt,
            self.adaptive_loop_lag,
            self.adaptive_measuring,
        )
        if controller is None:
            for gauge in gauges:
                self._drop(gauge, backend)
            return
        min_rtt, sample_rtt = controller.min_rtt, controller.sample_rtt
        values = (
            controller.limit,
            math.nan if min_rtt is None else min_rtt,
            math.nan if sample_rtt is None else sample_rtt,
            controller.loop_lag,
            1 if min_rtt is None else 0,
        )
        for gauge, value in zip(gauges, values, strict=True):
            self._child(gauge, backend).set(value)

    def shed_one(self, backend: str, limit: str) -> None:
        self._child(self.shed, backend, limit).inc()

    def finish(self, record: RequestRecord, status: int) -> None:
        """Count one finished request and observe its latencies."""
        elapsed = time.perf_counter() - record.started
        variant = record.variant
        if variant is None:
            unrouted = (record.model, "", "", "", "", record.protocol, str(status))
            self._child(self.requests, *unrouted).inc()
            return
        upstream_s = record.upstream_s
        key = (variant, record.model, record.protocol, status, upstream_s is None)
        series = self._request_series.get(key)
        if series is None:
            series = self._request_series[key] = self._series_of(record, variant, status)
        series[0]._value.inc(1)
        _observe(series[1], elapsed)
        if upstream_s is not None:
            _observe(series[2], upstream_s)
            _observe(series[3], max(elapsed - upstream_s, 0.0))

    def _series_of(self, record: RequestRecord, variant: Variant, status: int) -> tuple[Any, ...]:
        """The series of a finished request: count and duration, and the upstream and overhead
        histograms when it reached its backend."""
        backend = variant.backend
        labels = (record.model, variant.version, variant.name, backend.name, backend.runtime)
        counted = (
            self._child(self.requests, *labels, record.protocol, str(status)),
            self._child(self.request_duration, *labels, record.protocol),
        )
        if record.upstream_s is None:
            return counted
        return (
            *counted,
            self._child(self.upstream_duration, *labels),
            self._child(self.overhead, backend.name, backend.runtime, record.protocol),
        )


def _observe(histogram: Any, amount: float) -> None:
    """``Histogram.observe`` of a labelled child, less its per-call checks (observable, an
    exemplar) and its linear bucket search: this runs three times a request."""
    histogram._sum.inc(amount)
    histogram._buckets[bisect_left(histogram._upper_bounds, amount)].inc(1)


class VariantCollector(Collector):
    """``gateway_variant_weight`` and ``gateway_variant_ready``, computed when scraped.

    No series objects per variant: start-up stays fast with thousands of models, and the values
    are the configuration and the latest readiness probe, whichever worker answers the scrape.
    """

    LABELS = ("model", "variant", "backend", "runtime", "version")

    WEIGHT = ("gateway_variant_weight", "Configured relative weight of each variant (0 = drained).")
    READY = (
        "gateway_variant_ready",
        "1 when the variant's backend reports its model version ready.",
    )

    def __init__(self, variants: Callable[[], Iterable[Variant]], ready: Callable[[Variant], bool]):
        self._variants = variants
        self._ready = ready

    def pieces(self) -> Iterator[str]:
        """Both families as text, a line at a time (no sample objects for 10,000 models)."""
        texts: list[str] = []  # strings only: nothing here for the garbage collector to walk
        name, documentation = self.WEIGHT
        variants = list(self._variants())  # one table, even if a reload swaps it meanwhile
        for v in variants:
            if not texts:
                yield header(name, "gauge", documentation)
            values = (v.model, v.name, v.backend.name, v.backend.runtime, v.version)
            texts.append(labels_text(self.LABELS, values))
            yield f"{name}{{{texts[-1]}}} {value_text(float(v.weight))}\n"
        if not texts:
            return
        name, documentation = self.READY
        yield header(name, "gauge", documentation)
        for labels, v in zip(texts, variants, strict=True):
            yield f"{name}{{{labels}}} {1.0 if self._ready(v) else 0.0}\n"

    def collect(self) -> Iterator[Metric]:
        weight = GaugeMetricFamily(*self.WEIGHT, labels=self.LABELS)
        ready = GaugeMetricFamily(*self.READY, labels=self.LABELS)
        for v in self._variants():
            labels = [v.model, v.name, v.backend.name, v.backend.runtime, v.version]
            weight.add_metric(labels, v.weight)
            ready.add_metric(labels, 1.0 if self._ready(v) else 0.0)
        yield weight
        yield ready
