"""A finished request's series: counted once each, the same after a routing change."""

from __future__ import annotations

import time
from typing import cast

from prometheus_client import CollectorRegistry

from gateway.backends.base import Backend, BackendModel
from gateway.metrics import LATENCY_BUCKETS, GatewayMetrics, RequestRecord
from gateway.routing.router import Variant

BACKEND = cast(Backend, type("B", (), {"name": "ts", "runtime": "torchserve"})())
VARIANT = Variant("digits", "torch-v1", BACKEND, BackendModel("d", "1"), 1)


def finished(metrics: GatewayMetrics, upstream_s: float | None, status: int = 200) -> None:
    record = RequestRecord("oip_rest", time.perf_counter() - 0.002)
    record.model, record.variant, record.upstream_s = "digits", VARIANT, upstream_s
    metrics.finish(record, status)


def samples(metrics: GatewayMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in metrics.registry.collect()
        for s in family.samples
        if s.name.startswith(("gateway_request", "gateway_upstream", "gateway_overhead"))
    }


def value(metrics: GatewayMetrics, name: str, **labels: str) -> float:
    return sum(
        v
        for (sample, have), v in samples(metrics).items()
        if sample == name and set(labels.items()) <= set(have)
    )


def test_every_series_of_a_request_counts_it_and_its_bucket_is_the_first_that_holds_it():
    metrics = GatewayMetrics(CollectorRegistry())
    finished(metrics, 0.001)
    finished(metrics, LATENCY_BUCKETS[3])  # on a bound: that bucket, as prometheus_client does
    finished(metrics, None, 503)  # not sent: no upstream or overhead series for 503
    assert value(metrics, "gateway_requests_total", code="200") == 2
    assert value(metrics, "gateway_requests_total", code="503") == 1
    assert value(metrics, "gateway_request_duration_seconds_count") == 3
    assert value(metrics, "gateway_upstream_duration_seconds_count") == 2
    assert value(metrics, "gateway_overhead_seconds_count") == 2
    upstream = "gateway_upstream_duration_seconds_bucket"
    assert value(metrics, upstream, le=str(LATENCY_BUCKETS[2])) == 0
    assert value(metrics, upstream, le=str(LATENCY_BUCKETS[3])) == 1
    assert value(metrics, upstream, le=str(LATENCY_BUCKETS[4])) == 2
    assert abs(value(metrics, "gateway_upstream_duration_seconds_sum") - 0.00175) < 1e-9


def test_a_removed_variant_counts_from_zero_when_it_comes_back():
    metrics = GatewayMetrics(CollectorRegistry())
    finished(metrics, 0.001)
    gone = metrics.forget({("digits", "1", "torch-v1", "ts", "torchserve")}, {"ts"})
    assert gone == 4
    assert value(metrics, "gateway_requests_total") == 0
    finished(metrics, 0.001)
    assert value(metrics, "gateway_requests_total") == 1
    assert value(metrics, "gateway_upstream_duration_seconds_count") == 1
