"""A simulated gateway for the controller's tests: an in-memory admin API (that can be told to
fail) and traffic that follows its current weights, counted in metrics named and labelled as
the gateway's, on a prometheus_client registry and read back through its text format.

Time is simulated: ``advance(seconds)`` sends that many seconds of traffic at ``rps``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from gateway.metrics import LATENCY_BUCKETS, OVERHEAD_BUCKETS
from gateway.rollout.admin_client import AdminError
from gateway.rollout.state import ShadowTarget, VariantState

MODEL = "digits"
DIFF_BUCKETS = (1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0)


@dataclass
class Behaviour:
    """How one variant answers: its error rate, its latency, how often it diverges as a shadow."""

    error_rate: float = 0.0
    latency_s: float = 0.004
    divergence: float = 0.0


def starting_variants() -> dict[str, VariantState]:
    """v1 on both runtimes (the baseline), v3 deployed on both at weight 0 (the candidates)."""
    return {
        "tf-v1": VariantState(name="tf-v1", backend="tfserving", version="1", weight=40,
                              labels=("stable",)),
        "torch-v1": VariantState(name="torch-v1", backend="torchserve", version="1", weight=40,
                                 labels=("stable",)),
        "tf-v3": VariantState(name="tf-v3", backend="tfserving", version="3", weight=0),
        "torch-v3": VariantState(name="torch-v3", backend="torchserve", version="3", weight=0),
    }  # fmt: skip


class FakeAdmin:
    """The admin API's behaviour, in memory: PATCH changes a variant, GET lists them."""

    def __init__(self, variants: dict[str, VariantState]) -> None:
        self.variants_now = dict(variants)
        self.shadow = ShadowTarget()
        self.version = 1
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.fail: Callable[[str, dict[str, Any]], str | None] = lambda variant, body: None
        """Return an error message to make a PATCH of ``variant`` fail."""

    def variants(self, model: str) -> tuple[list[VariantState], str]:
        assert model == MODEL
        return list(self.variants_now.values()), str(self.version)

    def patch_variant(self, model: str, variant: str, changes: dict[str, Any]) -> str:
        self.calls.append(("PATCH", variant, changes))
        error = self.fail(variant, changes)
        if error:
            raise AdminError(error, 503)
        current = self.variants_now[variant]
        update = {k: tuple(v) if k == "labels" else v for k, v in changes.items()}
        changed = current.model_copy(update=update)
        after = {**self.variants_now, variant: changed}
        if not any(v.enabled and v.weight > 0 for v in after.values()):
            raise AdminError("every variant has weight 0: at least one must take traffic", 400)
        self.variants_now = after
        self.version += 1
        return str(self.version)

    def set_shadow(self, model: str, shadow: ShadowTarget) -> str:
        if model != MODEL:
            raise AdminError(f"unknown model {model!r}", 404)
        self.calls.append(("SHADOW", ",".join(shadow.variants), {"percent": shadow.percent}))
        self.shadow = shadow
        self.version += 1
        return str(self.version)

    def share(self, variant: str) -> float:
        live = {n: v.weight for n, v in self.variants_now.items() if v.enabled}
        total = sum(live.values())
        return live.get(variant, 0) / total if total else 0.0


@dataclass
class World:
    admin: FakeAdmin
    behaviour: dict[str, Behaviour]
    rps: float = 50.0
    noise_divergence: float = 0.01
    now: float = 1_000_000.0
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    seed: int = 7

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)
        self.requests = Counter(
            "gateway_requests", "requests",
            ["model", "version", "variant", "backend", "runtime", "protocol", "code"],
            registry=self.registry,
        )  # fmt: skip
        self.upstream = Histogram(
            "gateway_upstream_duration_seconds", "backend call",
            ["model", "version", "variant", "backend", "runtime"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.end_to_end = Histogram(
            "gateway_request_duration_seconds", "end to end",
            ["model", "version", "variant", "backend", "runtime", "protocol"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.overhead = Histogram(
            "gateway_overhead_seconds", "gateway time", ["backend", "runtime", "protocol"],
            buckets=OVERHEAD_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.shadow = Counter(
            "gateway_shadow_requests", "shadow comparisons",
            ["model", "primary", "shadow", "result"], registry=self.registry,
        )  # fmt: skip
        self.diff = Histogram(
            "gateway_shadow_max_abs_diff", "largest difference",
            ["model", "primary", "shadow"], buckets=DIFF_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.carry = 0.0
        self.scrapes = 0

    def clock(self) -> float:
        return self.now

    def _one(self) -> None:
        variants = self.admin.variants_now
        names = [n for n, v in variants.items() if v.enabled and v.weight > 0]
        name = self.random.choices(names, [variants[n].weight for n in names])[0]
        v, b = variants[name], self.behaviour.get(name, Behaviour())
        labels = (MODEL, v.version, name, v.backend, v.backend)
        failed = self.random.random() < b.error_rate
        self.requests.labels(*labels, "rest", "503" if failed else "200").inc()
        upstream = b.latency_s * self.random.uniform(0.7, 1.4)
        overhead = self.random.uniform(0.0002, 0.0006)
        self.upstream.labels(*labels).observe(upstream)
        self.end_to_end.labels(*labels, "rest").observe(upstream + overhead)
        self.overhead.labels(v.backend, v.backend, "rest").observe(overhead)
        shadow = self.admin.shadow
        if shadow.variants and self.random.random() * 100 < shadow.percent:
            for other in shadow.variants:
                if other == name:
                    continue
                behaviour = self.behaviour.get(other, Behaviour())
                same = variants[other].version == v.version
                rate = self.noise_divergence if same else behaviour.divergence
                result = "diverge" if self.random.random() < rate else "agree"
                self.shadow.labels(MODEL, name, other, result).inc()
                diff = 0.2 if result == "diverge" else 1e-6 * self.random.uniform(0.1, 3)
                self.diff.labels(MODEL, name, other).observe(diff)

    def advance(self, seconds: float) -> None:
        self.carry += seconds * self.rps
        for _ in range(int(self.carry)):
            self._one()
        self.carry -= int(self.carry)
        self.now += seconds

    def metrics_text(self, url: str, timeout: float) -> bytes:
        self.scrapes += 1
        return generate_latest(self.registry)
