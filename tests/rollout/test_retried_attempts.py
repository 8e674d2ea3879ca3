"""A candidate whose failures the gateway's retries hide from its clients is still judged on
them: every attempt counts, on the variant it was made to."""

from __future__ import annotations

from gateway.rollout.gates import error_rate
from gateway.rollout.observations import REQUESTS, RETRIED, summarize
from gateway.rollout.plan import Gates
from gateway.rollout.scrape import FAMILIES
from gateway.rollout.sources import PrometheusSource
from gateway.rollout.textformat import Sample, select


def _requests(variant: str, code: str, count: int) -> Sample:
    return Sample(REQUESTS, (("code", code), ("model", "digits"), ("variant", variant)), count)


def _retried(variant: str, count: int) -> Sample:
    labels = (("model", "digits"), ("reason", "unavailable"), ("variant", variant))
    return Sample(RETRIED, labels, count)


def test_retried_attempts_are_requests_and_errors_of_the_variant_they_failed_on():
    # 520 requests for the candidate: 120 failed on it and were answered by tf-v1 instead.
    samples = [
        _requests("tf-v3", "200", 400),
        _retried("tf-v3", 120),
        _requests("tf-v1", "200", 2000 + 120),
    ]
    gates = Gates()
    observed = summarize(samples, ["tf-v3"], ["tf-v1"], [], gates)
    assert (observed.candidate.requests, observed.candidate.errors) == (520, 120)
    assert (observed.baseline.requests, observed.baseline.errors) == (2120, 0)
    assert error_rate(observed.candidate, observed.baseline, gates).verdict == "fail"
    without = summarize([s for s in samples if s.name != RETRIED], ["tf-v3"], ["tf-v1"], [], gates)
    assert error_rate(without.candidate, without.baseline, gates).verdict == "pass"  # hidden


def test_both_sources_read_them():
    lines = [
        "# TYPE gateway_retried_attempts_total counter",
        'gateway_retried_attempts_total{model="digits",variant="tf-v3",backend="tfserving",'
        'runtime="tfserving",reason="unavailable"} 7',
    ]
    (sample,) = select(lines, FAMILIES, 'model="digits"')
    assert (sample.name, sample.label("variant"), sample.value) == (RETRIED, "tf-v3", 7.0)
    queries = PrometheusSource("http://prometheus:9090").queries("digits", "upstream", 60)
    assert queries[RETRIED] == (
        'sum by (variant) (increase(gateway_retried_attempts_total{model="digits"}[60s]))'
    )
