"""TF Serving's request count and latency metrics, exported in its exporter's text format."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram

from deploy.local.tfserving_standin.errors import Code, ServingError

# TF Serving's request_latency sampler: microseconds, scale 10, growth 1.8, 33 buckets.
LATENCY_BUCKETS_US = tuple(10 * 1.8**i for i in range(33))


class Metrics:
    """Counts inference requests by status and times the successful ones."""

    def __init__(self) -> None:
        self._registry = CollectorRegistry()
        self._requests = Counter(
            ":tensorflow:serving:request_count",
            "The total number of requests.",
            ["model_name", "status"],
            registry=self._registry,
        )
        self._latency = Histogram(
            ":tensorflow:serving:request_latency",
            "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
            ["model_name", "API", "entrypoint"],
            buckets=LATENCY_BUCKETS_US,
            registry=self._registry,
        )

    def _count(self, model_name: str, code: grpc.StatusCode) -> None:
        self._requests.labels(model_name, code.name).inc()

    @contextmanager
    def observe(self, model_name: str, api: str, entrypoint: str) -> Iterator[None]:
        """Count the call with the status it ends with (INTERNAL for an unexpected error)."""
        started = time.perf_counter()
        try:
            yield
        except ServingError as exc:
            self._count(model_name, exc.code)
            raise
        except Exception:
            self._count(model_name, Code.INTERNAL)
            raise
        self._count(model_name, Code.OK)
        elapsed_us = (time.perf_counter() - started) * 1e6
        self._latency.labels(model_name, api, entrypoint).observe(elapsed_us)

    def render(self) -> str:
        # TF's exporter names counters without "_total", writes no HELP and no "_created".
        lines: list[str] = []
        for family in self._registry.collect():
            lines.append(f"# TYPE {family.name} {family.type}")
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                name = family.name if family.type == "counter" else sample.name
                labels = ",".join(
                    f'{key}="{_label_value(key, value)}"' for key, value in sample.labels.items()
                )
                lines.append(f"{name}{{{labels}}} {_metric_number(sample.value)}")
        return "\n".join(lines) + "\n"


def _label_value(key: str, value: str) -> str:
    if key == "le" and value != "+Inf":
        value = f"{float(value):.6g}"
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _metric_number(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)
