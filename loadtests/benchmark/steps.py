"""The benchmark's progress: a line and a JSON record for each measurement as it is taken."""

from __future__ import annotations

from dataclasses import asdict

from loadtests.benchmark.cases import Measured, Summary
from loadtests.benchmark.plan import SETTLE_S
from loadtests.benchmark.wrk import WrkResult
from loadtests.progress import Progress


class Steps:
    """The run's progress: one line and one JSON record per measurement, start-up, ..."""

    def __init__(self, progress: Progress, seconds: float, rounds: int) -> None:
        self.progress = progress
        self.seconds = seconds
        self.rounds = rounds

    def measured(self, case: str) -> Measured:
        """What ``cases.interleaved`` calls after each measurement of ``case``."""

        def done(target: str, round_: int, result: WrkResult | Summary) -> None:
            line = (
                f"{case}: {target}, round {round_}/{self.rounds}: "
                f"{result.requests_per_s:,.0f} req/s, p50 {result.p50_ms:.3f} ms, "
                f"p99 {result.p99_ms:.3f} ms"
            )
            self.progress.advance(
                self.seconds + SETTLE_S, line, case=case, target=target, round=round_,
                **asdict(result),
            )  # fmt: skip

        return done

    def did(self, case: str, what: str, planned_s: float, **found: object) -> None:
        self.progress.advance(planned_s, f"{case}: {what}", case=case, **found)
