"""Every decision of the controller, as pure functions of (rollout, observations, now).

The controller persists what these return *before* acting on it (Flagger's order): a rollout
whose ``action`` is set has an action to carry out, and one restarted mid-action carries it out
again (actions are idempotent: they set variants to targets, whatever they were).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gateway.rollout import weights
from gateway.rollout.gates import GateResult, evaluate, overall
from gateway.rollout.observations import Observations, Traffic
from gateway.rollout.plan import NoisePair, Plan, ShadowStep
from gateway.rollout.state import Action, Rollout, ShadowTarget, VariantState


class RolloutRefused(ValueError):
    """A rollout that cannot start (unknown candidate, no baseline) or a command out of place."""


@dataclass(frozen=True)
class ActionResult:
    ok: bool
    applied: tuple[str, ...] = ()
    error: str | None = None


def default_noise(
    original: Mapping[str, VariantState], baseline: Sequence[str]
) -> tuple[tuple[str, str], ...]:
    """Baseline variants serving one version from different backends: they should agree."""
    for i, first in enumerate(baseline):
        for second in baseline[i + 1 :]:
            a, b = original[first], original[second]
            if a.version == b.version and a.backend != b.backend:
                return ((first, second),)
    return ()


def begin(
    model: str,
    candidates: Sequence[str],
    plan: Plan,
    variants: Sequence[VariantState],
    now: float,
) -> Rollout:
    """A new rollout, with its first step's action to apply."""
    original = {v.name: v for v in variants}
    missing = [c for c in candidates if c not in original]
    if missing:
        known = ", ".join(original) or "none"
        raise RolloutRefused(
            f"model {model!r} has no variant {', '.join(missing)} (known: {known}): "
            "deploy it first (gateway deploy)"
        )
    if len(set(candidates)) != len(candidates) or not candidates:
        raise RolloutRefused("name each candidate once")
    baseline = plan.baseline or tuple(
        v.name for v in variants if v.enabled and v.weight > 0 and v.name not in candidates
    )
    unknown = [b for b in baseline if b not in original or b in candidates]
    if not baseline or unknown:
        raise RolloutRefused(
            f"no baseline to compare with: {', '.join(unknown)} unknown or a candidate"
            if unknown
            else f"model {model!r} has no enabled variant with a weight besides the candidates"
        )
    if plan.noise is None:
        noise = default_noise(original, baseline)
    else:
        noise = tuple((pair.primary, pair.shadow) for pair in plan.noise)
    rollout = Rollout(
        model=model, candidates=tuple(candidates), baseline=tuple(baseline), original=original,
        plan=plan, scale=weights.scale_for(original), noise=noise, created=now, updated=now,
    )  # fmt: skip
    rollout = rollout.model_copy(update={"action": step_action(rollout, 0)})
    detail = f"candidates {', '.join(candidates)} against {', '.join(baseline)}"
    return rollout.with_event(now, "started", detail)


def noise_pairs(rollout: Rollout) -> tuple[NoisePair, ...]:
    return tuple(NoisePair(primary=p, shadow=s) for p, s in rollout.noise)


def step_action(rollout: Rollout, index: int) -> Action:
    step = rollout.plan.steps[index]
    if isinstance(step, ShadowStep):
        shadowed = (*rollout.candidates, *(s for _, s in rollout.noise))
        compare = step.compare.model_dump(exclude_none=True) if step.compare else {}
        shadow = ShadowTarget(
            variants=tuple(dict.fromkeys(shadowed)), percent=step.percent, compare=compare
        )
        return Action(kind="step", step=index, targets=weights.at_weight(rollout, 0), shadow=shadow)
    percent = 100.0 if step.kind == "bake" else step.weight
    return Action(
        kind="step",
        step=index,
        targets=weights.at_weight(rollout, percent),
        shadow=_shadow_off(rollout, index - 1),
    )


def _shadow_off(rollout: Rollout, after: int) -> ShadowTarget | None:
    """Shadowing off if step ``after`` turned it on (shadow steps are the only ones with it)."""
    steps = rollout.plan.steps
    return (
        ShadowTarget() if 0 <= after < len(steps) and isinstance(steps[after], ShadowStep) else None
    )


def promote(rollout: Rollout, now: float, reason: str) -> Rollout:
    action = Action(
        kind="promote",
        targets=weights.promoted(rollout),
        shadow=_shadow_off(rollout, max(rollout.step, 0)),
        reason=reason,
    )
    return rollout.with_event(now, "promoting", reason, phase="promoting", action=action)


def rollback(rollout: Rollout, now: float, reason: str) -> Rollout:
    action = Action(
        kind="rollback",
        targets=weights.rolled_back(rollout),
        shadow=_shadow_off(rollout, max(rollout.step, 0)),
        reason=reason,
    )
    return rollout.with_event(
        now, "rolling back", reason, with_gates=True, phase="rolling_back", action=action,
        reason=reason,
    )  # fmt: skip


def _failures(results: Sequence[GateResult]) -> str:
    return "; ".join(f"{r.gate} failed: {r.detail}" for r in results if r.verdict == "fail")


def _short(results: Sequence[GateResult]) -> str:
    return "; ".join(f"{r.gate}: {r.detail}" for r in results if r.verdict == "nodata")


def _step_time_done(rollout: Rollout, observed: Observations | None, now: float) -> bool:
    step = rollout.plan.steps[rollout.step]
    elapsed = now - rollout.step_started
    if isinstance(step, ShadowStep) and observed is not None:
        per_candidate = observed.shadow.compared / max(len(rollout.candidates), 1)
        return per_candidate >= step.requests or elapsed >= step.duration
    return elapsed >= step.duration


def decide(
    rollout: Rollout, observed: Observations | None, now: float, unavailable: str = ""
) -> Rollout:
    """One evaluation: roll back on a failed gate, advance when the step is done and its gates
    pass, wait (then pause) when they lack data. ``observed`` None: the metrics could not be
    read (``unavailable`` says why), which is no data."""
    if rollout.finished or rollout.action is not None or rollout.step < 0:
        return rollout
    if now < rollout.window_start:
        return rollout  # the change is settling
    step = rollout.plan.steps[rollout.step]
    reference = Traffic.from_json(rollout.reference) if rollout.reference else None
    if observed is None:
        results: list[GateResult] = []
        verdict, short = "nodata", f"metrics unavailable: {unavailable}"
    else:
        results = evaluate(step.gates, observed, rollout.plan.gates, reference)
        verdict, short = overall(results), _short(results)
    rollout = rollout.model_copy(
        update={"gates": tuple(r.to_json() for r in results), "evaluated_at": now}
    )
    if verdict == "fail":
        return rollback(rollout, now, _failures(results))
    if rollout.phase == "paused":
        return rollout
    if observed is not None and verdict == "pass" and _step_time_done(rollout, observed, now):
        return advance(rollout, observed, now)
    if not _step_time_done(rollout, observed, now):
        return rollout
    waiting_since = max(rollout.step_started + step.duration, rollout.resumed_at or 0.0)
    if now - waiting_since >= rollout.plan.no_data_limit:
        reason = f"not enough data after {rollout.plan.no_data_limit:g}s of waiting: {short}"
        return rollout.with_event(
            now, "paused", reason, with_gates=True, phase="paused", reason=reason
        )
    if rollout.phase != "waiting":
        return rollout.with_event(
            now, "waiting", short, with_gates=True, phase="waiting", reason=short
        )
    return rollout.model_copy(update={"reason": short})


def advance(rollout: Rollout, observed: Observations, now: float) -> Rollout:
    """The step passed: keep the baseline's window as the reference, then the next step."""
    reference = rollout.reference
    if observed.baseline.requests >= rollout.plan.gates.min_requests:
        reference = observed.baseline.to_json()
    rollout = rollout.with_event(
        now, "passed", rollout.step_name(), with_gates=True, reference=reference
    )
    following = rollout.step + 1
    if following >= len(rollout.plan.steps):
        return promote(rollout, now, "every step passed")
    action = step_action(rollout, following)
    return rollout.model_copy(update={"action": action, "phase": "progressing", "reason": ""})


def after_action(rollout: Rollout, result: ActionResult, now: float) -> Rollout:
    """Record how the pending action went: done, or failed (retried; a step's traffic change
    that keeps failing is rolled back; a rollback is retried until it is done)."""
    action = rollout.action
    if action is None:
        return rollout
    weights_set = {name: target.weight for name, target in action.targets.items()}
    if result.ok:
        if action.kind == "promote":
            return rollout.with_event(
                now, "action done: promoted", action.reason, weights_set, phase="succeeded",
                action=None, reason=action.reason,
            )  # fmt: skip
        if action.kind == "rollback":
            return rollout.with_event(
                now, "action done: rolled back", action.reason, weights_set,
                phase="rolled_back", action=None,
            )  # fmt: skip
        settle = rollout.plan.settle
        entered = rollout.model_copy(update={"step": action.step})
        return entered.with_event(
            now, f"action done: entered {entered.step_name()}", action.reason, weights_set,
            action=None, phase="progressing", step_started=now, window_start=now + settle,
            resumed_at=None, reason="", gates=(),
        )  # fmt: skip
    attempts = action.attempts + 1
    failed = action.model_copy(
        update={"attempts": attempts, "applied": result.applied, "last_error": result.error}
    )
    detail = (
        f"attempt {attempts} of {action.kind} failed after {len(result.applied)} change(s) "
        f"({', '.join(result.applied) or 'none'}): {result.error}"
    )
    rollout = rollout.with_event(now, "action failed", detail, action=failed)
    if action.kind != "rollback" and attempts >= rollout.plan.max_action_attempts:
        return rollback(rollout, now, f"could not apply {action.kind}: {result.error}")
    return rollout


# --- Operator commands -------------------------------------------------------------------------


def _live(rollout: Rollout, command: str) -> None:
    if rollout.finished:
        raise RolloutRefused(f"the rollout of {rollout.model} is over ({rollout.phase}): {command}")


def pause(rollout: Rollout, now: float, who: str = "operator") -> Rollout:
    _live(rollout, "pause")
    reason = f"paused by {who}"
    return rollout.with_event(now, "paused", reason, phase="paused", reason=reason)


def resume(rollout: Rollout, now: float, who: str = "operator") -> Rollout:
    _live(rollout, "resume")
    if rollout.phase != "paused":
        raise RolloutRefused(f"the rollout of {rollout.model} is not paused ({rollout.phase})")
    return rollout.with_event(
        now, "resumed", f"by {who}", phase="progressing", resumed_at=now, reason=""
    )


def promote_now(rollout: Rollout, now: float, who: str = "operator") -> Rollout:
    _live(rollout, "promote")
    return promote(rollout, now, f"promoted by {who}")


def abort(rollout: Rollout, now: float, who: str = "operator") -> Rollout:
    _live(rollout, "abort")
    return rollback(rollout, now, f"aborted by {who}")
