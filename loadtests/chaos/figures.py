"""What a scenario measured, against its target: one row of the ``make chaos`` table."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    scenario: str
    name: str
    value: str
    """The measurement as shown (with its unit), or why there is none."""
    target: str
    passed: bool | None
    """None: shown for information, not judged."""

    @property
    def verdict(self) -> str:
        return {True: "pass", False: "MISS", None: "info"}[self.passed]


def judged(scenario: str, name: str, value: float, unit: str, target: str, ok: bool) -> Figure:
    shown = f"{value:.0f}" if unit in ("", "req", "conn") else f"{value:.1f}"
    return Figure(scenario, name, f"{shown} {unit}".strip(), target, ok)


def refused(scenario: str, name: str, target: str, why: str) -> Figure:
    """A figure that could not be measured: a miss, saying why."""
    return Figure(scenario, name, f"not measured: {why}", target, False)


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (``share`` in 0..1); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def table(figures: Sequence[Figure]) -> str:
    """The figures as a Markdown table: scenario | figure | target | pass/miss."""
    rows = [("scenario", "figure", "target", "pass/miss")]
    rows += [(f.scenario, f"{f.name}: {f.value}", f.target, f.verdict) for f in figures]
    widths = [max(len(row[col]) for row in rows) for col in range(4)]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + " |"
        for row in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
