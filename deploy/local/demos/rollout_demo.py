"""``make rollout-demo``: under load through three client protocols, deploy digits version 3 to
both runtimes, shadow it, walk the canary steps and promote it; then deploy the bad version 4
(45% of its answers differ from v3's), whose shadow divergence trips the gate: rolled back.

Exit 0 only if v3 was promoted, v4 rolled back, and no client request failed.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from deploy.local.demos import cli
from deploy.local.demos.flow import MODEL, Demo, DemoError, load_plan
from deploy.local.demos.load import summary
from deploy.local.demos.outcome import Check, Expected, client_checks, rollout_checks
from gateway.rollout.admin_client import AdminError
from gateway.rollout.state import Rollout

PLAN = "rollout-demo.yaml"
STEPS = (Expected("version 3", "succeeded"), Expected("version 4", "rolled_back"))
MAX_LOAD_S = 900.0


def run(demo: Demo, rate: float, keep: bool, plan: dict[str, Any] | None = None) -> int:
    missing = demo.preflight()
    if missing:
        for line in missing:
            print(f"rollout-demo: {line}", file=sys.stderr)
        return 1
    plan = plan if plan is not None else load_plan(PLAN)
    try:
        original, _ = demo.admin.variants(MODEL)
        demo.finish_leftover()
    except (DemoError, AdminError) as error:
        print(f"rollout-demo: {error}", file=sys.stderr)
        return 1
    results: list[tuple[Expected, Rollout | None]] = []
    checks: list[Check] = []
    with demo.load(rate, MAX_LOAD_S) as load:
        demo.say(f"load        3 client protocols x {rate:g} requests/s, judged against each "
                 "version's own outputs")  # fmt: skip
        time.sleep(2)
        try:
            for expected in STEPS:
                candidates = demo.deploy(expected.what.split()[-1])
                results.append((expected, demo.rollout(candidates, plan)))
            time.sleep(2)  # clients keep going on the final split
        except DemoError as error:
            checks.append(Check("the demo ran to its end", False, str(error)))
    results += [(e, None) for e in STEPS[len(results) :]]
    demo.write("\nclients, over the whole demo:")
    demo.write(summary(load.stats))
    checks = [*rollout_checks(results), *client_checks(load.stats), *checks]
    return demo.conclude("rollout-demo", checks, original, keep)


def main(argv: list[str] | None = None) -> int:
    args = cli.parser("rollout-demo", __doc__ or "").parse_args(argv)
    plan = load_plan(PLAN, args.skip_shadow)
    return run(Demo(cli.stack_of(args)), args.rate, args.keep, plan)


if __name__ == "__main__":
    sys.exit(main())
