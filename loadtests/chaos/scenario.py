"""What every scenario has: a name, how long it plans to take, and a run that returns figures."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loadtests.chaos.figures import Figure
from loadtests.chaos.real_backends import RealBackends


@dataclass(frozen=True)
class Context:
    run_dir: Path
    quick: bool
    """Shorter runs (``make test``), the same assertions."""
    real: RealBackends
    """TorchServe and the TF Serving stand-in, started on first use."""

    def seconds(self, quick: float, full: float) -> float:
        return quick if self.quick else full


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str
    planned_s: tuple[float, float]
    """About how long it takes (quick, full), start-ups included: for the time left."""
    run: Callable[[Context], list[Figure]]
