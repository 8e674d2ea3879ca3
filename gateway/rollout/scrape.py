"""Metrics without Prometheus: the controller scrapes every replica's ``/metrics`` at each
evaluation and keeps the model's counters, so a window's increase is computed as Prometheus'
``increase()`` would (per replica, counter resets counted as restarts from zero), then summed.

A series absent from a replica's previous scrape counts from zero (prometheus_client creates a
counter at its first increment). History is memory only: a restarted controller starts its
windows at its first scrape, which can only mean *less* data (waiting), never a wrong verdict.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.rollout.observations import LATENCY, REQUESTS, RETRIED, SHADOW, SHADOW_DIFF
from gateway.rollout.sources import Fetch, MetricsUnavailable, http_get
from gateway.rollout.textformat import FormatError, Sample, select

SeriesKey = tuple[str, tuple[tuple[str, str], ...]]
FAMILIES = (
    REQUESTS,
    RETRIED,
    *(f"{name}_bucket" for name in LATENCY.values()),
    SHADOW,
    f"{SHADOW_DIFF}_bucket",
)


@dataclass(frozen=True)
class Point:
    at: float
    values: dict[SeriesKey, float]


def increase(points: Sequence[Point], start: float, end: float) -> dict[SeriesKey, float]:
    """Each series' increase over [start, end] from one replica's scrapes, oldest first."""
    inside = [p for p in points if p.at <= end]
    if not inside:
        return {}
    before = [i for i, p in enumerate(inside) if p.at <= start]
    first = before[-1] if before else 0
    totals: dict[SeriesKey, float] = {}
    for previous, current in zip(inside[first:], inside[first + 1 :], strict=False):
        for key, value in current.values.items():
            old = previous.values.get(key, 0.0)
            totals[key] = totals.get(key, 0.0) + (value - old if value >= old else value)
    return totals


class ScrapeSource:
    def __init__(
        self,
        targets: Sequence[str],
        fetch: Fetch = http_get,
        timeout: float = 10.0,
        retention_s: float = 4 * 3600,
        max_points: int = 2000,
    ) -> None:
        if not targets:
            raise ValueError("no /metrics URLs to scrape")
        self.targets = tuple(targets)
        self.description = f"scraping {', '.join(self.targets)}"
        self._fetch = fetch
        self._timeout = timeout
        self._retention_s = retention_s
        self._max_points = max_points
        self._history: dict[tuple[str, str], list[Point]] = {}
        self.errors: dict[str, str] = {}
        """The last scrape's failures, by target (the status shows them)."""

    def _scrape(self, target: str, model: str) -> dict[SeriesKey, float]:
        body = self._fetch(target, self._timeout)
        lines = body.decode("utf-8", errors="replace").splitlines()
        try:
            samples = list(select(lines, FAMILIES, f"model={_quoted(model)}"))
        except FormatError as error:
            raise MetricsUnavailable(f"{target}: {error}") from None
        values: dict[SeriesKey, float] = {}
        for sample in samples:
            if math.isfinite(sample.value):
                key = (sample.name, sample.labels)
                values[key] = values.get(key, 0.0) + sample.value
        return values

    def record(self, model: str, at: float) -> None:
        """Scrape every target now, as of ``at``; MetricsUnavailable if none answered."""
        self.errors = {}
        for target in self.targets:
            try:
                values = self._scrape(target, model)
            except MetricsUnavailable as error:
                self.errors[target] = str(error)
                continue
            points = self._history.setdefault((target, model), [])
            points.append(Point(at, values))
            cutoff = at - self._retention_s
            while len(points) > 1 and (len(points) > self._max_points or points[0].at < cutoff):
                points.pop(0)
        if len(self.errors) == len(self.targets):
            raise MetricsUnavailable("; ".join(self.errors.values()))

    def window(self, model: str, latency_metric: str, start: float, end: float) -> list[Sample]:
        self.record(model, end)
        totals: dict[SeriesKey, float] = {}
        for target in self.targets:
            for key, value in increase(self._history.get((target, model), []), start, end).items():
                totals[key] = totals.get(key, 0.0) + value
        return [Sample(name, labels, value) for (name, labels), value in totals.items()]


def _quoted(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return f'"{escaped}"'
