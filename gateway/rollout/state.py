"""A rollout's whole state, as persisted (``<state_dir>/<model>.json``) before every action.

Everything the controller needs to resume after a restart is here: the plan it runs, the
variants as they were when it started (what a rollback restores), the step and when its
traffic took effect, the action under way (how far it got, its last error), the baseline's
reference window and the history.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.rollout.plan import Plan

Phase = Literal[
    "progressing",  # a step's traffic is on; its gates are evaluated every interval
    "waiting",  # the step's time is up but a gate has too little data: waiting for more
    "paused",  # held (by an operator, or after waiting no_data_limit); failed gates still roll back
    "promoting",  # the promotion is being applied
    "succeeded",  # promoted: the candidates took the baseline's weights and labels
    "rolling_back",  # the rollback is being applied (retried until it is)
    "rolled_back",  # the candidates are disabled and the baseline restored
]
PHASES: tuple[Phase, ...] = (
    "progressing", "waiting", "paused", "promoting", "succeeded", "rolling_back", "rolled_back",
)  # fmt: skip
TERMINAL = frozenset({"succeeded", "rolled_back"})
HISTORY_LIMIT = 1000


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VariantState(_Model):
    """A variant as the admin API shows it: what the controller sets and restores."""

    name: str
    backend: str = ""
    version: str = ""
    weight: int = 0
    enabled: bool = True
    labels: tuple[str, ...] = ()


class Target(_Model):
    """What one variant should be once an action is applied."""

    weight: int
    enabled: bool
    labels: tuple[str, ...]


class ShadowTarget(_Model):
    """Shadowing of the model: to ``variants`` (none: off), ``percent`` of its requests."""

    variants: tuple[str, ...] = ()
    percent: float = 0
    compare: dict[str, float] = Field(default_factory=dict)
    """The comparison knobs the step sets (``atol``, ``rtol``, ``top_k``); empty: the gateway's."""


class Action(_Model):
    kind: Literal["step", "promote", "rollback"]
    step: int = -1
    """The step it enters (``kind: step``)."""
    targets: dict[str, Target]
    shadow: ShadowTarget | None = None
    """None: shadowing is left as it is."""
    reason: str = ""
    attempts: int = 0
    applied: tuple[str, ...] = ()
    """Changes the last attempt made before it stopped (``variant: field old -> new``)."""
    last_error: str | None = None


class Event(_Model):
    at: float
    event: str
    step: int
    phase: Phase
    detail: str = ""
    weights: dict[str, int] = Field(default_factory=dict)
    gates: tuple[dict[str, Any], ...] = ()


class Rollout(_Model):
    model: str
    candidates: tuple[str, ...]
    baseline: tuple[str, ...]
    original: dict[str, VariantState]
    """Every variant of the model when the rollout started."""
    plan: Plan
    scale: int = 1
    """Weights are multiplied by this during the rollout, so 5% is exact (undone at the end)."""
    noise: tuple[tuple[str, str], ...] = ()
    phase: Phase = "progressing"
    step: int = -1
    """Index into ``plan.steps``; -1 until the first step's traffic is on."""
    step_started: float = 0.0
    window_start: float = 0.0
    """Gates look at metrics from here on (``step_started`` + ``plan.settle``)."""
    resumed_at: float | None = None
    reason: str = ""
    """Why it is waiting, paused, rolled back..."""
    action: Action | None = None
    reference: dict[str, Any] | None = None
    """The baseline's traffic in the last window that had enough of it (Traffic.to_json)."""
    gates: tuple[dict[str, Any], ...] = ()
    """The last evaluation's gate results."""
    evaluated_at: float | None = None
    created: float = 0.0
    updated: float = 0.0
    history: tuple[Event, ...] = ()

    @property
    def finished(self) -> bool:
        return self.phase in TERMINAL

    def step_name(self, index: int | None = None) -> str:
        index = self.step if index is None else index
        if index < 0:
            return "start"
        if index >= len(self.plan.steps):
            return "promote"
        step = self.plan.steps[index]
        if step.kind == "canary":
            return f"canary {step.weight:g}%"
        return step.kind

    def with_event(
        self,
        at: float,
        event: str,
        detail: str = "",
        weights: dict[str, int] | None = None,
        with_gates: bool = False,
        **changes: Any,
    ) -> Rollout:
        """This rollout changed by ``changes``, with an entry in its history."""
        changed = self.model_copy(update={**changes, "updated": at})
        entry = Event(
            at=at, event=event, step=changed.step, phase=changed.phase, detail=detail,
            weights=weights or {}, gates=changed.gates if with_gates else (),
        )  # fmt: skip
        history = (*changed.history, entry)[-HISTORY_LIMIT:]
        return changed.model_copy(update={"history": history})
