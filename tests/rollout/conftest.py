from __future__ import annotations

from pathlib import Path

import pytest

from gateway.rollout.controller import Controller
from tests.rollout.simulation import controller_for, good
from tests.rollout.world import FakeAdmin, World, starting_variants


@pytest.fixture
def world() -> World:
    return World(FakeAdmin(starting_variants()), good())


@pytest.fixture
def controller(world: World, tmp_path: Path) -> Controller:
    return controller_for(world, tmp_path / "state")
