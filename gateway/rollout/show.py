"""A rollout as a person reads it in a terminal (``gateway rollout status``)."""

from __future__ import annotations

import math
import time
from typing import Any

from gateway.rollout.metrics import candidate_percent
from gateway.rollout.state import Rollout


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:+.4f}" if abs(value) < 1 else f"{value:.3f}"


def gate_lines(gates: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> list[str]:
    return [
        f"  {g['gate']:<13} {g['verdict']:<7} {_number(g['value']):>8}  {g['detail']}"
        for g in gates
    ]


def status_text(rollout: Rollout, now: float | None = None, history: int = 12) -> str:
    now = time.time() if now is None else now
    steps = len(rollout.plan.steps)
    position = f"step {rollout.step + 1} of {steps} ({rollout.step_name()})"
    if rollout.step < 0:
        position = "starting"
    lines = [
        f"{rollout.model}: {rollout.phase} at {position}, candidates at "
        f"{candidate_percent(rollout):g}%",
        f"candidates {', '.join(rollout.candidates)} against {', '.join(rollout.baseline)}"
        + (
            f"; noise pair {', '.join(' / '.join(p) for p in rollout.noise)}"
            if rollout.noise
            else ""
        ),
    ]
    if rollout.step >= 0 and not rollout.finished:
        lines.append(
            f"in this step since {_clock(rollout.step_started)} ({now - rollout.step_started:.0f}s)"
        )
    if rollout.reason:
        lines.append(f"reason: {rollout.reason}")
    action = rollout.action
    if action is not None:
        lines.append(f"action under way: {action.kind} (attempt {action.attempts + 1})")
        if action.last_error:
            done = ", ".join(action.applied) or "nothing"
            lines.append(f"  last attempt failed after {done}: {action.last_error}")
    if rollout.gates:
        when = f" ({now - rollout.evaluated_at:.0f}s ago)" if rollout.evaluated_at else ""
        lines += [f"gates{when}:", *gate_lines(rollout.gates)]
    lines.append("history:")
    for event in rollout.history[-history:]:
        detail = f": {event.detail}" if event.detail else ""
        weights = " ".join(f"{n}={w}" for n, w in event.weights.items())
        lines.append(
            f"  {_clock(event.at)} {rollout.step_name(event.step):<11} {event.event}{detail}"
            + (f" [{weights}]" if weights else "")
        )
    return "\n".join(lines)
