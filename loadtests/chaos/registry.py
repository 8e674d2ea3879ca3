"""Every scenario, in the order ``make chaos`` runs them."""

from __future__ import annotations

from loadtests.chaos.scenario import Scenario
from loadtests.chaos.scenarios import (
    hung,
    killed,
    overload,
    reset,
    sigterm,
    slowloris,
    trickle,
)

SCENARIOS: list[Scenario] = [
    hung.SCENARIO,
    reset.SCENARIO,
    trickle.SCENARIO,
    overload.ADVISED_SCENARIO,
    overload.DEFAULTS_SCENARIO,
    slowloris.SCENARIO,
    sigterm.SCENARIO,
    killed.SCENARIO,
]
