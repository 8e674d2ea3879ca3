"""Where windows of the gateway's metrics come from: Prometheus' HTTP API, or (``scrape.py``)
the replicas' own ``/metrics``. Both answer the same question — each series' increase between
two times, summed over every worker and replica — as text-format samples.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from gateway.rollout.observations import LATENCY, REQUESTS, RETRIED, SHADOW, SHADOW_DIFF
from gateway.rollout.textformat import Sample

MAX_ANSWER_BYTES = 64 * 1024 * 1024


class MetricsUnavailable(Exception):
    """The source could not be read; a window without data is waited on, never judged."""


class MetricSource(Protocol):
    description: str

    def window(self, model: str, latency_metric: str, start: float, end: float) -> list[Sample]:
        """Each series' increase from ``start`` to ``end`` (epoch seconds)."""
        ...

    def record(self, model: str, at: float) -> None:
        """Take a sample now, for windows asked later (scraping keeps its own history)."""
        ...


Fetch = Callable[[str, float], bytes]


def http_get(url: str, timeout: float) -> bytes:
    """GET ``url``; the body, at most MAX_ANSWER_BYTES; MetricsUnavailable on any failure."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body: bytes = response.read(MAX_ANSWER_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise MetricsUnavailable(f"{url}: {error}") from None
    if len(body) > MAX_ANSWER_BYTES:
        raise MetricsUnavailable(f"{url}: answer larger than {MAX_ANSWER_BYTES} bytes")
    return body


def label_matcher(value: str) -> str:
    return json.dumps(value)  # PromQL string literals take Go's escapes, a superset of these


class PrometheusSource:
    """``sum by (...) (increase(...[Ns]))`` at ``time=end``: every replica Prometheus scrapes."""

    def __init__(self, url: str, fetch: Fetch = http_get, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.description = f"Prometheus at {self.url}"
        self._fetch = fetch
        self._timeout = timeout

    def queries(self, model: str, latency_metric: str, seconds: int) -> dict[str, str]:
        """Sample name -> PromQL (public so a reader can run them by hand)."""
        where = f"model={label_matcher(model)}"
        latency = f"{LATENCY[latency_metric]}_bucket"
        return {
            REQUESTS: f"sum by (variant, code) (increase({REQUESTS}{{{where}}}[{seconds}s]))",
            RETRIED: f"sum by (variant) (increase({RETRIED}{{{where}}}[{seconds}s]))",
            latency: f"sum by (variant, le) (increase({latency}{{{where}}}[{seconds}s]))",
            SHADOW: f"sum by (primary, shadow, result) (increase({SHADOW}{{{where}}}[{seconds}s]))",
            f"{SHADOW_DIFF}_bucket": (
                f"sum by (primary, shadow, le) "
                f"(increase({SHADOW_DIFF}_bucket{{{where}}}[{seconds}s]))"
            ),
        }

    def query(self, promql: str, at: float) -> list[dict[str, Any]]:
        params = urllib.parse.urlencode({"query": promql, "time": f"{at:.3f}"})
        body = self._fetch(f"{self.url}/api/v1/query?{params}", self._timeout)
        try:
            doc = json.loads(body)
        except ValueError:
            raise MetricsUnavailable(f"{self.url}: not JSON") from None
        if doc.get("status") != "success":
            raise MetricsUnavailable(f"{self.url}: {doc.get('error', doc.get('status'))}")
        result: list[dict[str, Any]] = doc["data"]["result"]
        return result

    def record(self, model: str, at: float) -> None:
        """Nothing to do: Prometheus keeps the history."""

    def window(self, model: str, latency_metric: str, start: float, end: float) -> list[Sample]:
        seconds = max(1, math.ceil(end - start))
        samples = []
        for name, promql in self.queries(model, latency_metric, seconds).items():
            for series in self.query(promql, end):
                value = float(series["value"][1])
                if math.isfinite(value):
                    labels = tuple(sorted(series["metric"].items()))
                    samples.append(Sample(name, labels, value))
        return samples


def source_for(prometheus: str | None, scrape: Sequence[str]) -> MetricSource:
    """The plan's (or the controller's) choice: Prometheus when given, else scraping."""
    if prometheus:
        return PrometheusSource(prometheus)
    if scrape:
        from gateway.rollout.scrape import ScrapeSource

        return ScrapeSource(scrape)
    raise ValueError("no metrics: give a Prometheus URL or the replicas' /metrics URLs")
