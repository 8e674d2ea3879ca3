"""The controller's own metrics (on its ``/metrics``), defined once on an injected registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from gateway.rollout.state import PHASES, Rollout

VERDICTS = ("pass", "fail", "nodata")


class RolloutMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.step = Gauge(
            "gateway_rollout_step",
            "Index of the rollout's current step in its plan (-1: starting; the number of "
            "steps: promoted).",
            ["model"],
            registry=registry,
        )
        self.state = Gauge(
            "gateway_rollout_state",
            "1 for the rollout's current state (progressing, waiting, paused, promoting, "
            "succeeded, rolling_back, rolled_back), 0 for the others.",
            ["model", "state"],
            registry=registry,
        )
        self.candidate_weight = Gauge(
            "gateway_rollout_candidate_weight_percent",
            "The candidates' share of the traffic the rollout moves, in percent.",
            ["model"],
            registry=registry,
        )
        self.gate = Gauge(
            "gateway_rollout_gate",
            "1 for each gate's last verdict (pass, fail, nodata), 0 for the others.",
            ["model", "gate", "verdict"],
            registry=registry,
        )
        self.actions = Counter(
            "gateway_rollout_actions",
            "Actions applied through the admin API, by kind (step, promote, rollback) and result.",
            ["model", "kind", "result"],
            registry=registry,
        )

    def show(self, rollout: Rollout) -> None:
        model = rollout.model
        step = len(rollout.plan.steps) if rollout.phase == "succeeded" else rollout.step
        self.step.labels(model).set(step)
        for phase in PHASES:
            self.state.labels(model, phase).set(1.0 if phase == rollout.phase else 0.0)
        self.candidate_weight.labels(model).set(candidate_percent(rollout))
        for result in rollout.gates:
            for verdict in VERDICTS:
                value = 1.0 if result["verdict"] == verdict else 0.0
                self.gate.labels(model, result["gate"], verdict).set(value)

    def acted(self, model: str, kind: str, ok: bool) -> None:
        self.actions.labels(model, kind, "ok" if ok else "failed").inc()


def candidate_percent(rollout: Rollout) -> float:
    """What the current step gives the candidates (100 once promoted, 0 once rolled back)."""
    if rollout.phase == "succeeded":
        return 100.0
    if rollout.phase == "rolled_back" or rollout.step < 0:
        return 0.0
    step = rollout.plan.steps[rollout.step]
    if step.kind == "canary":
        return step.weight
    return 100.0 if step.kind == "bake" else 0.0
