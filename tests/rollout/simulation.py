"""Running the controller against the simulated world on a fast plan."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gateway.rollout.controller import Controller
from gateway.rollout.plan import Metrics, Plan, parse_plan
from gateway.rollout.scrape import ScrapeSource
from gateway.rollout.state import Rollout
from gateway.rollout.store import StateStore
from tests.rollout.world import Behaviour, World

# A plan short enough to simulate quickly, with every kind of step.
FAST_PLAN = {
    "interval": "10s",
    "settle": "5s",
    "no_data_limit": "2m",
    "metrics": {"scrape": ["http://replica-1/metrics"]},
    "steps": [
        {"kind": "shadow", "requests": 300, "duration": "2m"},
        {"kind": "canary", "weight": 5, "duration": "1m"},
        {"kind": "canary", "weight": 25, "duration": "1m"},
        {"kind": "canary", "weight": 50, "duration": "1m"},
        {"kind": "canary", "weight": 100, "duration": "1m"},
        {"kind": "bake", "duration": "1m"},
    ],
}


def fast_plan(**changes: object) -> Plan:
    return parse_plan({**FAST_PLAN, **changes})


def good() -> dict[str, Behaviour]:
    return {
        "tf-v3": Behaviour(divergence=0.02),
        "torch-v3": Behaviour(divergence=0.02, latency_s=0.0045),
    }


def controller_for(world: World, state_dir: Path) -> Controller:
    def scrape(metrics: Metrics) -> ScrapeSource:
        return ScrapeSource(metrics.scrape, fetch=world.metrics_text)

    return Controller(
        StateStore(state_dir), world.admin, Metrics(), clock=world.clock, sources=scrape
    )


def run_until(
    controller: Controller,
    world: World,
    done: Callable[[Rollout], bool],
    limit_s: float = 3600,
    step_s: float = 10,
) -> Rollout:
    """Simulated time passes, traffic flows, the controller evaluates, until ``done``."""
    end = world.now + limit_s
    while world.now < end:
        world.advance(step_s)
        controller.tick()
        rollout = controller.status("digits")
        assert rollout is not None
        if done(rollout):
            return rollout
    raise AssertionError(f"not done within {limit_s}s: {controller.status('digits')}")
