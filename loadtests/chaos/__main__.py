"""``make chaos``: the fault suite (see the README's "Fault suite"); exit 1 if a target is missed.

``python -m loadtests.chaos [--quick] [--only NAME ...]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from loadtests.chaos.figures import table
from loadtests.chaos.registry import SCENARIOS
from loadtests.chaos.suite import report, run_suite

REPORTS = Path(__file__).resolve().parents[1] / "reports" / "chaos"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loadtests.chaos", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the shorter runs of make test")
    parser.add_argument(
        "--only", nargs="+", choices=[s.name for s in SCENARIOS], metavar="NAME", default=None
    )
    args = parser.parse_args(argv)
    chosen = [s for s in SCENARIOS if args.only is None or s.name in args.only]
    REPORTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    records = REPORTS / f"chaos-{stamp}.jsonl"
    print(f"chaos: {len(chosen)} scenarios; raw results in {records}", flush=True)
    with tempfile.TemporaryDirectory(prefix="chaos-") as run_dir:
        figures = run_suite(chosen, Path(run_dir), args.quick, records)
    text = report(figures)
    (REPORTS / f"chaos-{stamp}.md").write_text(table(figures) + "\n")
    print(text, flush=True)
    return 1 if any(f.passed is False for f in figures) else 0


if __name__ == "__main__":
    sys.exit(main())
