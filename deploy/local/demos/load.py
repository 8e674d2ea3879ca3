"""The demo's clients: a bounded background load on the gateway, one thread per protocol, each
request judged against the served version's own outputs (``judge``).

Bounded in rate (requests a second per protocol), in time (``max_seconds``) and in what it
keeps (latencies of at most ``MAX_KEPT`` requests, the first ``MAX_PROBLEMS`` failures). Most
requests carry one of ``USERS`` user ids (sticky routing), the rest none.
"""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.error
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from deploy.local.demos.judge import judge
from deploy.local.demos.ways import RequestFailed, Way
from loadtests.endpoints import STICKY_HEADER
from loadtests.expected import fetch_catalog
from model_store.digits import DigitsSet, FloatArray, load_reference, load_test_set

USERS = 50
STICKY_SHARE = 0.7
MAX_KEPT = 100_000
MAX_PROBLEMS = 5
CATALOG_REFRESH_S = 1.0


@dataclass
class WayStats:
    """What one protocol's client saw."""

    requests: int = 0
    failed: int = 0
    correct: int = 0
    digits: int = 0
    by_variant: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")


class Catalog:
    """Variant -> version, from the gateway's model metadata; read again (at most once a
    second) when an answer names a variant it does not know, since the demo deploys new ones."""

    def __init__(self, fetch: Callable[[], dict[str, str]]) -> None:
        self._fetch = fetch
        self._versions: dict[str, str] = {}
        self._fetched = -CATALOG_REFRESH_S
        self._lock = threading.Lock()

    @staticmethod
    def of_gateway(url: str, model: str) -> Catalog:
        def fetch() -> dict[str, str]:
            return {name: s.version for name, s in fetch_catalog(url, model).items()}

        return Catalog(fetch)

    def version(self, variant: str) -> str | None:
        with self._lock:
            if variant not in self._versions and (
                time.monotonic() - self._fetched >= CATALOG_REFRESH_S
            ):
                self._fetched = time.monotonic()
                # Unreadable: judged as "no version known", and the next miss asks again.
                with contextlib.suppress(OSError, urllib.error.URLError, ValueError, KeyError):
                    self._versions.update(self._fetch())
            return self._versions.get(variant)


class References:
    """Each version's reference outputs, loaded once."""

    def __init__(self, loader: Callable[[str], FloatArray] = load_reference) -> None:
        self._loader = loader
        self._outputs: dict[str, FloatArray] = {}
        self._lock = threading.Lock()

    def __call__(self, version: str) -> FloatArray:
        with self._lock:
            if version not in self._outputs:
                self._outputs[version] = self._loader(version)
            return self._outputs[version]


class BackgroundLoad:
    def __init__(
        self,
        ways: Sequence[Way],
        catalog: Catalog,
        rate: float = 10.0,
        max_seconds: float = 600.0,
        digits: DigitsSet | None = None,
        references: References | None = None,
        seed: int = 0,
        started: float | None = None,
    ) -> None:
        """``started`` (``time.time()``): what failures' times are counted from (the demo's
        start; default: this load's)."""
        self.stats = {way.name: WayStats() for way in ways}
        self._ways = list(ways)
        self._catalog = catalog
        self._rate = rate
        self._max_seconds = max_seconds
        self._digits = digits if digits is not None else load_test_set()
        self._references = references or References()
        self._seed = seed
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._started = started

    def start(self) -> BackgroundLoad:
        if self._started is None:
            self._started = time.time()
        for number, way in enumerate(self._ways):
            thread = threading.Thread(
                target=self._run, args=(way, number), name=f"load {way.name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> dict[str, WayStats]:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        for way in self._ways:
            way.close()
        return self.stats

    def __enter__(self) -> BackgroundLoad:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def totals(self) -> tuple[int, int]:
        """Requests sent and failed so far, over every protocol."""
        with self._lock:
            return (
                sum(s.requests for s in self.stats.values()),
                sum(s.failed for s in self.stats.values()),
            )

    def served(self) -> dict[str, Counter[str]]:
        """A copy of each protocol's requests by the variant that answered them."""
        with self._lock:
            return {name: Counter(s.by_variant) for name, s in self.stats.items()}

    def _run(self, way: Way, number: int) -> None:
        rng = np.random.default_rng(self._seed + number)
        period = 1.0 / self._rate
        deadline = time.monotonic() + self._max_seconds
        due = time.monotonic()
        while not self._stop.is_set() and time.monotonic() < deadline:
            self._one(way, rng)
            due += period
            self._stop.wait(max(0.0, due - time.monotonic()))
            due = max(due, time.monotonic() - period)  # no burst to catch up after a stall

    def _one(self, way: Way, rng: np.random.Generator) -> None:
        index = rng.integers(0, len(self._digits), size=1)
        headers = {}
        if rng.random() < STICKY_SHARE:
            headers[STICKY_HEADER] = f"demo-user-{int(rng.integers(USERS))}"
        started = time.perf_counter()
        variant: str | None = None
        try:
            answer = way.send(self._digits.inputs[index], headers)
            variant = answer.variant
            version = answer.version or (variant and self._catalog.version(variant))
            verdict = judge(
                answer.probabilities, index, self._digits.labels[index], variant,
                version or None, self._references,
            )  # fmt: skip
            problem, correct = verdict.problem, verdict.correct
        except RequestFailed as error:
            variant, problem, correct = error.variant, str(error), 0
        latency_ms = (time.perf_counter() - started) * 1000
        with self._lock:
            stats = self.stats[way.name]
            stats.requests += 1
            stats.by_variant[variant or "-"] += 1
            if len(stats.latencies_ms) < MAX_KEPT:
                stats.latencies_ms.append(latency_ms)
            if problem is None:
                stats.digits += 1
                stats.correct += correct
            else:
                stats.failed += 1
                if len(stats.problems) < MAX_PROBLEMS:
                    at = time.time() - (self._started or 0.0)
                    stats.problems.append(f"at {at:.1f}s: {problem}")


def summary(stats: dict[str, WayStats]) -> str:
    """A table: per protocol, requests, failures, latency, accuracy and the variants seen."""
    lines = [
        f"{'client protocol':<17}{'requests':>9}{'failed':>8}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'accuracy':>10}  variants that answered"
    ]
    for name, s in stats.items():
        accuracy = f"{s.correct / s.digits:.3f}" if s.digits else "-"
        seen = " ".join(f"{v}={n}" for v, n in sorted(s.by_variant.items()))
        lines.append(
            f"{name:<17}{s.requests:>9}{s.failed:>8}{s.percentile_ms(50):>8.2f}"
            f"{s.percentile_ms(99):>8.2f}{accuracy:>10}  {seen}"
        )
        lines += [f"    failed: {problem}" for problem in s.problems]
    return "\n".join(lines)
