"""What every scenario has: a name, how long it plans to take, and a run that returns figures."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from loadtests.chaos.driver import Sample
from loadtests.chaos.figures import Figure
from loadtests.chaos.real_backends import RealBackends


@dataclass(frozen=True)
class Context:
    run_dir: Path
    quick: bool
    """Shorter runs (``make test``), the same assertions."""
    real: RealBackends
    """TorchServe and the TF Serving stand-in, started on first use."""

    raw_dir: Path | None = None
    """Where every request's sample is kept (JSON lines per phase), if anywhere."""

    def seconds(self, quick: float, full: float) -> float:
        return quick if self.quick else full

    def keep(self, phase: str, samples: Sequence[Sample]) -> None:
        """Write one phase's samples (times relative to its first request) to ``raw_dir``."""
        if self.raw_dir is None or not samples:
            return
        self.raw_dir.mkdir(parents=True, exist_ok=True)
        start = min(s.started for s in samples)
        with (self.raw_dir / f"{phase.replace(' ', '-')}.jsonl").open("w") as out:
            for s in samples:
                doc = {
                    "i": s.index,
                    "t": round(s.started - start, 4),
                    "latency_ms": round(s.latency_s * 1000, 2),
                    "status": s.status,
                    "variant": s.variant,
                    "tag": s.tag,
                    "error": s.error,
                }
                out.write(json.dumps(doc) + "\n")


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str
    planned_s: tuple[float, float]
    """About how long it takes (quick, full), start-ups included: for the time left."""
    run: Callable[[Context], list[Figure]]
    needs_real: bool = False
    """Runs on the real TorchServe and TF Serving stand-in (started early, they take a while)."""
