"""The baseline case's added p99, pooled over several runs of it: over several lifetimes of the
gateways' processes, not one.

    python -m loadtests.benchmark.across RUN/results.jsonl RUN2/results.jsonl ...

Within one run the baseline case alternates new and old in every round, so drift in the
machine's load falls on both alike; but each gateway is one process for the whole run, and a
process keeps what it drew at start-up (where its heap and hot objects landed in memory and in
the caches, which core its threads settle on) for all its rounds. On this 2-core VM that moves a
1-worker gateway's p99 by 10-30% from one start to the next with no change in the code: two
identical twins in the shadow case differed by -29% and +16% in one run. The bootstrap over
rounds cannot see it (every round has the same processes), so a single run's verdict is really
about two particular processes. Taken together, runs give the p99 of every request of every
process start, and the range here is a bootstrap over the runs (each draw keeps a run's rounds
together), the unit that varies.

Each file is the ``results.jsonl`` a benchmark run writes beside ``--out``: every measurement,
with the tail quantiles ``wrk.py`` prints and the request count.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from loadtests.benchmark.pooled import pooled_percentile
from loadtests.benchmark.wrk import WrkResult

CASE = re.compile(r"^baseline (\d+) req/s$")
BUDGET = 1.05
"""Issue 9's budget: new's added p99 at most 5% above old's."""


@dataclass(frozen=True)
class Cell:
    """One rate and worker count of one run: new's, old's and the upstream's runs, by round."""

    new: list[WrkResult]
    old: list[WrkResult]
    direct: list[WrkResult]


Runs = list[dict[tuple[int, int], Cell]]
"""Per run, its cells by (rate, workers)."""


def result_of(record: dict[str, object]) -> WrkResult:
    tail = record.get("tail") or ()
    assert isinstance(tail, list | tuple)
    return WrkResult(
        float(record["requests_per_s"]),  # type: ignore[arg-type]
        float(record["p50_ms"]),  # type: ignore[arg-type]
        float(record["p90_ms"]),  # type: ignore[arg-type]
        float(record["p99_ms"]),  # type: ignore[arg-type]
        int(record["errors"]),  # type: ignore[call-overload]
        int(record.get("requests", 0)),  # type: ignore[call-overload]
        tuple((float(p), float(ms)) for p, ms in tail),
    )


def read_run(lines: Iterable[str]) -> dict[tuple[int, int], Cell]:
    """The fixed-rate cells of one run's ``results.jsonl``. The targets are named as the
    baseline case names them: ``direct``, ``gateway-N`` (this tree) and ``gateway-N @rev``."""
    found: dict[tuple[int, str], list[WrkResult]] = {}
    for line in lines:
        if not line.strip():
            continue
        record = json.loads(line)
        matched = CASE.match(str(record.get("case", "")))
        if matched is None or "target" not in record:
            continue
        found.setdefault((int(matched[1]), str(record["target"])), []).append(result_of(record))
    cells: dict[tuple[int, int], Cell] = {}
    for (rate, target), results in sorted(found.items()):
        new = re.fullmatch(r"gateway-(\d+)", target)
        if new is None:
            continue
        workers = int(new[1])
        old = [r for (k, t), r in found.items() if k == rate and t.startswith(f"{target} @")]
        direct = found.get((rate, "direct"))
        if len(old) != 1 or direct is None:
            raise ValueError(f"rate {rate}: {target} has no single old twin or no direct run")
        if not len(results) == len(old[0]) == len(direct):
            raise ValueError(f"rate {rate}, {target}: rounds differ between the targets")
        cells[(rate, workers)] = Cell(results, old[0], direct)
    if not cells:
        raise ValueError("no baseline fixed-rate measurements in it (a --cases baseline run?)")
    return cells


def added_p99(cells: Sequence[Cell]) -> tuple[float, float]:
    """New's and old's added p99 (ms) over every round of ``cells`` pooled."""
    direct = pooled_percentile([r for c in cells for r in c.direct], 99.0)
    new = pooled_percentile([r for c in cells for r in c.new], 99.0) - direct
    old = pooled_percentile([r for c in cells for r in c.old], 99.0) - direct
    return new, old


def ratio(cells: Sequence[Cell]) -> float:
    new, old = added_p99(cells)
    return new / old if old > 0 else float("inf")


def run_interval(cells: Sequence[Cell], draws: int = 400, seed: int = 0) -> tuple[float, float]:
    """The 5th and 95th percentiles of the pooled ratio over the runs drawn again with
    replacement."""
    rng = random.Random(seed)
    values = sorted(ratio([cells[rng.randrange(len(cells))] for _ in cells]) for _ in range(draws))
    return values[int(0.05 * (draws - 1))], values[int(0.95 * (draws - 1))]


def report(runs: Runs) -> tuple[list[str], bool]:
    """Lines to print, and whether every cell's pooled ratio is within the budget."""
    keys = sorted(set.intersection(*(set(run) for run in runs)))
    out = [f"added p99, new / old, pooled over {len(runs)} runs (each run: fresh processes)"]
    within = True
    for rate, workers in keys:
        cells = [run[(rate, workers)] for run in runs]
        new, old = added_p99(cells)
        pooled = new / old if old > 0 else float("inf")
        low, high = run_interval(cells)
        each = " ".join(f"{ratio([c]):.3f}" for c in cells)
        verdict = "met" if pooled <= BUDGET else "MISSED"
        within = within and pooled <= BUDGET
        out.append(
            f"  [{verdict}] {rate} req/s, {workers} worker(s): {new:.3f} vs {old:.3f} ms, "
            f"{pooled:.3f} (bootstrap over runs {low:.2f}-{high:.2f}; each run: {each})"
        )
    return out, within


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="results.jsonl of baseline runs")
    args = parser.parse_args(argv)
    runs = [read_run(path.read_text().splitlines()) for path in args.runs]
    lines, within = report(runs)
    print("\n".join(lines))
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
