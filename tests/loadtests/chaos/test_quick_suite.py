"""``make chaos``'s scenarios in their quick form (shorter runs, the same targets), as part of
``make test``: every figure must meet its target."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.local.stack import StackPorts
from loadtests.chaos.figures import table
from loadtests.chaos.real_backends import RealBackends, TorchServeAt
from loadtests.chaos.registry import SCENARIOS
from loadtests.chaos.scenario import Context, Scenario
from loadtests.chaos.scenarios import killed


def marked(scenario: Scenario) -> Any:
    """The scenario as a test parameter, named after it."""
    return pytest.param(scenario, id=scenario.name.replace(" ", "-"))


ON_FAULT_SERVERS = [marked(s) for s in SCENARIOS if s is not killed.SCENARIO]


@pytest.fixture(scope="module", autouse=True)
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealBackends]:
    """A TF Serving stand-in of this module's own (it gets killed), started first: it loads
    while the other scenarios run."""
    real = RealBackends(tmp_path_factory.mktemp("real"), own_torchserve=False)
    real.begin()
    try:
        yield real
    finally:
        real.stop()


@pytest.fixture
def real(backends: StackPorts, standin: RealBackends) -> RealBackends:
    """The session's TorchServe beside the stand-in."""
    ts = backends.torchserve
    standin.torchserve_at = TorchServeAt(
        f"http://127.0.0.1:{ts.inference}",
        f"http://127.0.0.1:{ts.management}",
        backends.torchserve_key_file,
    )
    return standin


def check(scenario: Scenario, run_dir: Path, real: RealBackends) -> None:
    figures = scenario.run(Context(run_dir, True, real))
    assert figures
    assert all(f.passed is not False for f in figures), "\n" + table(figures)


@pytest.mark.parametrize("scenario", ON_FAULT_SERVERS)
def test_fault_server_scenario_meets_its_targets(scenario: Scenario, tmp_path: Path) -> None:
    check(scenario, tmp_path, RealBackends(tmp_path / "unused"))


@pytest.mark.stack
@pytest.mark.parametrize("scenario", [marked(killed.SCENARIO)])
def test_a_killed_backend_costs_its_users_nothing(
    scenario: Scenario, real: RealBackends, tmp_path: Path
) -> None:
    check(scenario, tmp_path, real)
