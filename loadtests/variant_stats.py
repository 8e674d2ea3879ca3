"""What each variant served: requests, failures, latency, and accuracy against the labels.

Counted over every user class of one Locust process under the ``x-gateway-variant`` of each
answer (``""`` for a request no variant answered). Workers hand their counts to the master with
each stats report (``take``/``merge``), so the master's book holds the whole run. Latency is kept
as a histogram of two-significant-digit buckets, so books merge exactly. No Locust here: the
runner reads the files this writes.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NO_VARIANT = ""  # requests that no variant answered (refused, unreachable, unnamed)
COUNTS = ("requests", "failures", "digits", "correct", "mismatched")


def bucket(ms: float) -> float:
    """A response time rounded to two significant digits: 0.83, 1.2, 12, 160 ms."""
    return float(f"{ms:.2g}") if ms > 0 else 0.0


@dataclass
class VariantStats:
    runtime: str = ""  # the variant's backend kind (tfserving, torchserve, oip)
    version: str = ""  # the model version it serves
    requests: int = 0  # requests this variant answered (or, for NO_VARIANT, that none did)
    failures: int = 0  # of them, Locust failures: errors and answers that failed a check
    digits: int = 0  # digits it classified
    correct: int = 0  # of them, argmax == label: the model's accuracy
    mismatched: int = 0  # of them, answers that differ from the model's own output
    latency: Counter[float] = field(default_factory=Counter)  # ms bucket -> requests

    @property
    def accuracy(self) -> float:
        return self.correct / self.digits if self.digits else math.nan

    def percentile_ms(self, share: float) -> float:
        """The response time that ``share`` of the requests did not exceed (bucketed)."""
        count = sum(self.latency.values())
        if not count:
            return math.nan
        rank, seen = share * count, 0
        for ms in sorted(self.latency):
            seen += self.latency[ms]
            if seen >= rank:
                return ms
        return max(self.latency)

    def add(self, other: VariantStats) -> None:
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.latency.update(other.latency)
        self.runtime = self.runtime or other.runtime
        self.version = self.version or other.version

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"runtime": self.runtime, "version": self.version}
        doc.update({name: getattr(self, name) for name in COUNTS})
        doc["latency_ms"] = sorted(self.latency.items())  # [bucket, count] pairs
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> VariantStats:
        stats = cls(str(doc.get("runtime", "")), str(doc.get("version", "")))
        for name in COUNTS:
            setattr(stats, name, int(doc.get(name, 0)))
        stats.latency.update({float(ms): int(count) for ms, count in doc.get("latency_ms", [])})
        return stats


class VariantBook:
    def __init__(self) -> None:
        self._stats: dict[str, VariantStats] = {}

    def answered(
        self,
        variant: str,
        response_ms: float,
        *,
        runtime: str = "",
        version: str = "",
        digits: int = 0,
        correct: int = 0,
        mismatched: int = 0,
        failed: bool = False,
    ) -> None:
        """One request, answered by ``variant`` (NO_VARIANT: by none), and how it went."""
        stats = self._stats.setdefault(variant, VariantStats())
        stats.add(
            VariantStats(
                runtime, version, 1, int(failed), digits, correct, mismatched,
                Counter({bucket(response_ms): 1}),
            )
        )  # fmt: skip

    def variants(self) -> dict[str, VariantStats]:
        return dict(sorted(self._stats.items()))

    def reset(self) -> None:
        self._stats.clear()

    def take(self) -> dict[str, dict[str, Any]]:
        """The counts since the last ``take`` (for the master), and forget them."""
        taken = {variant: stats.to_json() for variant, stats in self._stats.items()}
        self._stats.clear()
        return taken

    def merge(self, taken: dict[str, dict[str, Any]]) -> None:
        for variant, doc in taken.items():
            self._stats.setdefault(variant, VariantStats()).add(VariantStats.from_json(doc))

    def write(self, prefix: str) -> list[Path]:
        """``{prefix}_variants.json`` and ``{prefix}_variants.csv``, next to Locust's CSVs."""
        variants = self.variants()
        json_path, csv_path = Path(f"{prefix}_variants.json"), Path(f"{prefix}_variants.csv")
        json_path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"variants": {name: stats.to_json() for name, stats in variants.items()}}
        json_path.write_text(json.dumps(doc, indent=1) + "\n")
        with csv_path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["group", "name", "runtime", "version", *COUNTS[:2], "p50_ms",
                             "p99_ms", *COUNTS[2:], "accuracy"])  # fmt: skip
            rows = [("variant", name, stats) for name, stats in variants.items()]
            rows += [("runtime", name, stats) for name, stats in by_runtime(variants).items()]
            for group, name, s in rows:
                writer.writerow([
                    group, name, s.runtime, s.version, s.requests, s.failures,
                    s.percentile_ms(0.5), s.percentile_ms(0.99), s.digits, s.correct,
                    s.mismatched, f"{s.accuracy:.4f}",
                ])  # fmt: skip
        return [json_path, csv_path]

    def table(self) -> str:
        return stats_table(self.variants())


def by_runtime(variants: dict[str, VariantStats]) -> dict[str, VariantStats]:
    """The variants' statistics added up per runtime (requests no variant answered left out)."""
    runtimes: dict[str, VariantStats] = {}
    for name, stats in variants.items():
        if name != NO_VARIANT:
            runtimes.setdefault(stats.runtime or "?", VariantStats(stats.runtime)).add(stats)
    for stats in runtimes.values():
        stats.version = ""  # a runtime serves several versions
    return dict(sorted(runtimes.items()))


STATS_HEADER = (
    f"{'variant':<16} {'runtime':<11} {'version':>7} {'requests':>8} {'failures':>8} "
    f"{'p50 ms':>7} {'p99 ms':>7} {'digits':>7} {'accuracy':>8}"
)


def stats_line(name: str, s: VariantStats) -> str:
    """One row under ``STATS_HEADER``."""
    return (
        f"{name:<16} {s.runtime:<11} {s.version:>7} {s.requests:>8} {s.failures:>8} "
        f"{s.percentile_ms(0.5):>7g} {s.percentile_ms(0.99):>7g} {s.digits:>7} "
        f"{s.accuracy:>8.3f}"
    )


def extra_lines(variants: dict[str, VariantStats]) -> list[str]:
    """The rows below the variants: each runtime's sum, and the requests no variant answered."""
    lines = [stats_line(f"({runtime})", s) for runtime, s in by_runtime(variants).items()]
    if NO_VARIANT in variants:
        lines.append(stats_line("(no variant)", variants[NO_VARIANT]))
    return lines


def stats_table(variants: dict[str, VariantStats]) -> str:
    """Per variant, then per runtime: what it served, how fast, how well."""
    rows = [stats_line(name, s) for name, s in variants.items() if name != NO_VARIANT]
    return "\n".join([STATS_HEADER, *rows, *extra_lines(variants)])


def read_variants(path: Path) -> dict[str, VariantStats]:
    """The statistics in a ``_variants.json`` written by ``VariantBook.write``."""
    variants = json.loads(path.read_text())["variants"]
    return {name: VariantStats.from_json(doc) for name, doc in variants.items()}


BOOK = VariantBook()
