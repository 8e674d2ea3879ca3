"""``make migrate-demo``: move digits off TorchServe to MLServer without its clients noticing.

The model starts at version 1 on TF Serving and TorchServe (``tf-v1``, ``torch-v1``; the
version-2 variants drained for the walk-through, so that every shadow pair serves the same
weights). Under load through three client protocols, MLServer's ``mlserver-v1`` is shadowed
against TorchServe's answers (divergence judged above the noise of TF Serving against
TorchServe on the same version), then takes TorchServe's traffic step by step; at the end
TorchServe's variant is disabled and its clients (TorchServe REST among them) are answered by
MLServer. Exit 0 only if all of that held and no client request failed.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import Any

from deploy.local.demos import cli
from deploy.local.demos.flow import MODEL, Demo, DemoError, load_plan
from deploy.local.demos.load import summary
from deploy.local.demos.outcome import Check, Expected, client_checks, rollout_checks
from gateway.rollout.admin_client import AdminError
from gateway.rollout.state import Rollout, VariantState

PLAN = "migrate-demo.yaml"
FROM, TO = "torch-v1", "mlserver-v1"
DRAINED = ("tf-v2", "torch-v2")
MOVE = Expected(f"{FROM} -> {TO}", "succeeded")
MAX_LOAD_S = 600.0


def end_state_checks(variants: list[VariantState], before: VariantState) -> list[Check]:
    by_name = {v.name: v for v in variants}
    old, new = by_name.get(FROM), by_name.get(TO)
    return [
        Check(f"{FROM} (TorchServe) ends disabled", old is not None and not old.enabled,
              f"enabled={old.enabled}, weight {old.weight}" if old else "gone"),
        Check(f"{TO} (MLServer) took its weight and labels",
              new is not None and new.enabled and new.weight == before.weight
              and set(before.labels) <= set(new.labels),
              f"weight {new.weight}, labels {list(new.labels)}" if new else "gone"),
    ]  # fmt: skip


def moved_checks(after: dict[str, Counter[str]]) -> list[Check]:
    """After the move, every protocol's clients were answered by MLServer, none by TorchServe."""
    return [
        Check(f"{name} clients answered by {TO} after the move, never {FROM}",
              served[TO] > 0 and served[FROM] == 0,
              " ".join(f"{v}={n}" for v, n in sorted(served.items())))
        for name, served in after.items()
    ]  # fmt: skip


def run(demo: Demo, rate: float, keep: bool, plan: dict[str, Any] | None = None) -> int:
    missing = demo.preflight()
    if missing:
        for line in missing:
            print(f"migrate-demo: {line}", file=sys.stderr)
        return 1
    plan = plan if plan is not None else load_plan(PLAN)
    original, _ = demo.admin.variants(MODEL)
    names = {v.name: v for v in original}
    absent = [n for n in (FROM, TO, "tf-v1") if n not in names]
    if absent:
        print(f"migrate-demo: {MODEL} has no variant {', '.join(absent)}", file=sys.stderr)
        return 1
    try:
        demo.finish_leftover()
        for name in DRAINED:
            if name in names and names[name].weight:
                demo.admin.patch_variant(MODEL, name, {"weight": 0})
    except (DemoError, AdminError) as error:
        print(f"migrate-demo: {error}", file=sys.stderr)
        return 1
    demo.say(f"start       {MODEL} at version 1: tf-v1 (TF Serving) and {FROM} (TorchServe); "
             f"{', '.join(DRAINED)} drained; {TO} (MLServer) at weight 0")  # fmt: skip
    rollout: Rollout | None = None
    checks: list[Check] = []
    with demo.load(rate, MAX_LOAD_S) as load:
        demo.say(f"load        3 client protocols x {rate:g} requests/s, judged against version "
                 "1's own outputs")  # fmt: skip
        time.sleep(2)
        try:
            rollout = demo.rollout([TO], plan)
            at_move = load.served()
            time.sleep(3)  # clients keep going on the final split
            after = {name: counts - at_move[name] for name, counts in load.served().items()}
            if rollout.phase == "succeeded":
                checks += moved_checks(after)
        except DemoError as error:
            checks.append(Check("the demo ran to its end", False, str(error)))
    demo.write("\nclients, over the whole demo:")
    demo.write(summary(load.stats))
    try:
        variants, _ = demo.admin.variants(MODEL)
    except AdminError as error:
        variants = []
        checks.append(Check("the end state read back", False, str(error)))
    checks = [*rollout_checks([(MOVE, rollout)]), *end_state_checks(variants, names[FROM]),
              *checks, *client_checks(load.stats)]  # fmt: skip
    return demo.conclude("migrate-demo", checks, original, keep)


def main(argv: list[str] | None = None) -> int:
    args = cli.parser("migrate-demo", __doc__ or "").parse_args(argv)
    plan = load_plan(PLAN, args.skip_shadow)
    return run(Demo(cli.stack_of(args)), args.rate, args.keep, plan)


if __name__ == "__main__":
    sys.exit(main())
