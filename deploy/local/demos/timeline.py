"""The demo's timeline: each rollout's history as the controller records it (step, weights, gate
values, decision), printed as it happens, with the time since the demo started.

``Timeline.update(rollout)`` prints the events it has not printed yet; the lines are kept for
the demo's summary.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from gateway.rollout.state import Event, Rollout

DETAIL_WIDTH = 110
DIGITS = re.compile(r"\d+")

DECISIONS = {
    "passed": "gates pass: advance",
    "rolling back": "ROLL BACK",
    "action done: rolled back": "rolled back",
    "promoting": "PROMOTE",
    "action done: promoted": "promoted",
    "waiting": "wait for data",
    "paused": "PAUSED",
}


def shares(weights: dict[str, int]) -> str:
    """``tf-v1 47.5%  tf-v3 2.5%``: each variant's share of the split (weight 0 left out)."""
    total = sum(weights.values())
    if total <= 0:
        return ""
    return "  ".join(f"{name} {weight / total:.1%}" for name, weight in weights.items() if weight)


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:+.4f}" if abs(value) < 1 else f"{value:.3f}"


RATIO_GATES = ("latency", "max_abs_diff")
"""Gates whose value is a ratio to the baseline's (the others: a difference of rates)."""


def _ratio(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.3f}x"


def gate_text(gate: dict[str, Any]) -> str:
    """``error_rate pass +0.0000 (limit +0.0100)``, ``latency pass 1.043x (limit 1.500x)``."""
    show = _ratio if gate["gate"] in RATIO_GATES else _number
    threshold = gate.get("threshold")
    limit = f" (limit {show(threshold)})" if threshold is not None else ""
    return f"{gate['gate']} {gate['verdict']} {show(gate.get('value'))}{limit}"


def event_lines(rollout: Rollout, event: Event, elapsed: float) -> list[str]:
    step = rollout.step_name(event.step)
    decision = DECISIONS.get(event.event, "")
    # A step's name, or the reason already printed with the decision, says nothing new.
    repeated = event.event == "passed" or event.event.startswith("action done: ")
    detail = "" if repeated else event.detail
    if len(detail) > DETAIL_WIDTH:
        detail = detail[:DETAIL_WIDTH] + "…"
    head = f"{elapsed:>7.1f}s  {step:<11} {event.event}"
    if decision:
        head += f"  -> {decision}"
    lines = [head]
    if detail:
        lines.append(f"{'':>20}{detail}")
    if event.weights:
        lines.append(f"{'':>20}split: {shares(event.weights)}")
    if event.gates:
        lines.append(f"{'':>20}gates: " + "; ".join(gate_text(g) for g in event.gates))
    return lines


class Timeline:
    def __init__(self, started: float, write: Callable[[str], None] = print) -> None:
        self.started = started
        self.lines: list[str] = []
        self._write = write
        self._printed: dict[tuple[str, float], int] = {}
        self._last: tuple[str, int, str] | None = None
        self._repeats = 0

    def say(self, at: float, text: str) -> None:
        """A line of the demo's own (a deploy, the load starting) in the same columns."""
        self._say_repeats()
        self._emit(f"{at - self.started:>7.1f}s  {text}")

    def update(self, rollout: Rollout) -> None:
        key = (rollout.model, rollout.created)
        done = self._printed.get(key, 0)
        for event in rollout.history[done:]:
            same = (event.event, event.step, DIGITS.sub("N", event.detail))
            if same == self._last:
                self._repeats += 1  # an action retried every interval: said once, then counted
                continue
            self._say_repeats()
            self._last = same
            for line in event_lines(rollout, event, event.at - self.started):
                self._emit(line)
        self._printed[key] = len(rollout.history)
        if rollout.finished:
            self._say_repeats()

    def _say_repeats(self) -> None:
        if self._repeats:
            self._emit(f"{'':>20}(the same {self._repeats} more times)")
        self._repeats = 0

    def _emit(self, line: str) -> None:
        self.lines.append(line)
        self._write(line)
