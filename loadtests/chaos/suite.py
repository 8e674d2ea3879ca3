"""Run the scenarios one after another, show progress with the time left, keep every figure on
disk as it is known, print the table, and say whether every target was met."""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from loadtests.chaos.figures import Figure, table
from loadtests.chaos.real_backends import RealBackends
from loadtests.chaos.scenario import Context, Scenario
from loadtests.progress import Progress


def run_suite(
    scenarios: Sequence[Scenario],
    run_dir: Path,
    quick: bool,
    records: Path,
    real: RealBackends | None = None,
) -> list[Figure]:
    """Every scenario's figures; a scenario that raises is one miss saying what went wrong."""
    real = real if real is not None else RealBackends(run_dir / "real")
    if any(s.needs_real for s in scenarios):
        real.begin()  # TorchServe takes a while: it starts while the other scenarios run
    planned = [s.planned_s[0] if quick else s.planned_s[1] for s in scenarios]
    progress = Progress(
        "chaos", sum(planned), steps=len(scenarios), out=sys.stdout, records=records, live=False
    )
    figures: list[Figure] = []
    try:
        for index, (scenario, seconds) in enumerate(zip(scenarios, planned, strict=False)):
            progress.say(f"chaos: {scenario.name}: {scenario.what} (about {seconds:.0f} s)")
            slug = f"{index:02d}-{scenario.name.replace(' ', '-')}"
            context = Context(run_dir / slug, quick, real, records.with_suffix("") / slug)
            started = time.monotonic()
            try:
                found = scenario.run(context)
            except Exception as error:  # a scenario that cannot run is a miss, not a crash
                first = (str(error).splitlines() or [""])[0][:160]
                why = f"failed: {type(error).__name__}: {first}"
                found = [Figure(scenario.name, "run", why, "runs", False)]
                progress.say(traceback.format_exc())
            figures += found
            verdict = "pass" if all(f.passed is not False for f in found) else "MISS"
            progress.advance(
                seconds,
                f"{scenario.name}: {verdict} ({time.monotonic() - started:.0f} s)",
                scenario=scenario.name,
                figures=[asdict(f) for f in found],
            )
    finally:
        real.stop()
    progress.finish(f"{sum(f.passed is False for f in figures)} missed")
    return figures


def report(figures: Sequence[Figure]) -> str:
    missed = [f for f in figures if f.passed is False]
    summary = (
        f"{len(missed)} of {sum(f.passed is not None for f in figures)} targets missed"
        if missed
        else "every target met"
    )
    return table(figures) + "\n\n" + summary
