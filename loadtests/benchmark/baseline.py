"""The baseline case: this tree's gateway against an older tree's, in one run.

``--cases baseline --baseline DIR`` starts 1- and 2-worker gateways from this tree and from
``DIR`` (its own ``gateway`` package: ``PYTHONPATH=DIR``, started in ``DIR``) with the same
config in front of the same no-op upstream, and measures them side by side: the closed loop
(32 connections) and the fixed rates of the ``fixed`` case, with the upstream alone beside them
for the added p50/p99. Two runs of the benchmark minutes apart do not compare: on a shared
machine a proxy's closed-loop figure moves by 20% from one run to the next, Envoy's too. Here
every round measures every target back to back, so drift in the machine's load falls on all
alike, and each figure is the median of the per-round ratios, with their range beside it.

The order of the rounds is a Williams design (:func:`williams_orders`): over a cycle of rounds
each target takes each place in a round equally often and follows each other target equally
often. Where a target sits in a round, and what ran just before it, moved its per-round p99 by
up to 10% here. With the order that this replaced (one order, reversed every other round) the
last target ran twice in a row at every other round's start, and the new tree's 1-worker
gateway followed the upstream alone in every other round where the old tree's never did. The
workers' CPU time per request at each fixed rate is reported too: it moves far less with the
neighbours than a p99.

The p99 a target is judged on is pooled (:mod:`loadtests.benchmark.pooled`): the p99 of every
round's requests together, for new, old and the upstream alone, so the added p99 rests on
thousands of requests rather than on each round's ten slowest. Its range is a bootstrap over
the rounds (5th to 95th percentile).
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.local.process import ManagedProcess, free_port, http_ok
from loadtests.benchmark import footprint, peers, pinning
from loadtests.benchmark import plan as p
from loadtests.benchmark.cases import Load, Starter, small_body, warm_up
from loadtests.benchmark.pooled import pooled_percentile, round_interval
from loadtests.benchmark.scrape import cpu_seconds
from loadtests.benchmark.steps import Steps
from loadtests.benchmark.wrk import WrkResult

JSON_HEADERS = {"Content-Type": "application/json"}
CLOSED_CONNECTIONS = 32


@dataclass(frozen=True)
class Pair:
    """New against old over the rounds: the per-round ratios (new / old), their median."""

    new: list[float]
    old: list[float]

    @property
    def ratios(self) -> list[float]:
        return [n / o if o else float("inf") for n, o in zip(self.new, self.old, strict=True)]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    def spread(self) -> str:
        ratios = self.ratios
        return f"rounds {min(ratios):.2f}-{max(ratios):.2f}"


def tree_label(tree: Path) -> str:
    """``@<short commit>`` of the tree, or its directory name when it is not a checkout."""
    found = subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return "@" + (found.stdout.strip() if found.returncode == 0 else tree.name)


def server_fields(tree: Path) -> set[str]:
    """The ``server`` keys the tree's gateway accepts."""
    code = "import json; from gateway.config import ServerConfig; "
    code += "print(json.dumps(sorted(ServerConfig.model_fields)))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
    )
    return set(json.loads(out.stdout))


def for_tree(config: dict[str, Any], fields: set[str]) -> dict[str, Any]:
    """``config`` without the ``server`` keys an older gateway would refuse."""
    older = copy.deepcopy(config)
    older["server"] = {k: v for k, v in older["server"].items() if k in fields}
    return older


def old_gateway(
    tree: Path, run: Path, config: dict[str, Any], name: str
) -> tuple[ManagedProcess, int]:
    """``peers.gateway``, from ``tree``'s code."""
    run.mkdir(parents=True, exist_ok=True)
    path = run / f"{name}.json"
    path.write_text(json.dumps(config))
    port = int(config["server"]["http"]["port"])
    process = ManagedProcess(
        name,
        [sys.executable, "-m", "gateway", "serve", "--config", str(path), "--log-level", "warning"],
        run,
        ready=lambda: http_ok(f"http://127.0.0.1:{port}/v2/health/live"),
        env={"PYTHONPATH": str(tree)},
        cwd=tree,
    )
    return process, port


def williams_orders(targets: int) -> list[list[int]]:
    """The rounds of a Williams design for ``targets`` targets (by index): each target takes
    each place and directly follows each other target equally often over the rounds returned
    (``targets`` of them, or twice that for an odd count). From 4 targets up no target is
    measured twice in a row across two rounds either, the cycle's wrap included."""
    if targets <= 1:
        return [list(range(targets))]
    first, low, high = [0], 1, targets - 1
    while len(first) < targets:
        if len(first) % 2:
            first.append(low)
            low += 1
        else:
            first.append(high)
            high -= 1
    rounds = [[(place + shift) % targets for place in first] for shift in range(targets)]
    if targets % 2:
        rounds += [list(reversed(order)) for order in rounds]
    return rounds


def balanced(
    targets: dict[str, Callable[[], WrkResult]],
    rounds: int,
    measured: Callable[[str, int, WrkResult], None],
) -> dict[str, list[WrkResult]]:
    """Every target once a round, in the order of :func:`williams_orders` (balanced when
    ``rounds`` is a multiple of its cycle: 4 rounds for 4 targets, 10 for 5)."""
    results: dict[str, list[WrkResult]] = {name: [] for name in targets}
    names = list(targets)
    cycle = williams_orders(len(names))
    for round_ in range(1, rounds + 1):
        for index in cycle[(round_ - 1) % len(cycle)]:
            name = names[index]
            result = targets[name]()
            results[name].append(result)
            measured(name, round_, result)
    return results


def with_cpu(
    measure: Callable[[], WrkResult], workers: list[int], seconds: float, into: list[float]
) -> Callable[[], WrkResult]:
    """``measure``, also appending the workers' CPU microseconds per request to ``into``."""

    def run() -> WrkResult:
        before = cpu_seconds(workers)
        result = measure()
        requests = max(result.requests_per_s * seconds, 1.0)
        into.append((cpu_seconds(workers) - before) * 1e6 / requests)
        return result

    return run


def measure_baseline(
    run: Path,
    upstream: ManagedProcess,
    ups: peers.Upstreams,
    scripts: Path,
    args: Any,
    start: Starter,
    steps: Steps,
) -> dict[str, Any]:
    """Both trees' gateways, pinned as the shadow case pins (``pinning.py``): wrk and the
    upstream on one core, the 1-worker gateways' workers on another; the 2-worker gateways'
    workers are left free (two cores cannot give them one each beside the load)."""
    tree = Path(args.baseline).resolve()
    old = tree_label(tree)
    fields = server_fields(tree)
    urls: dict[str, str] = {"direct": f"http://127.0.0.1:{ups.first}"}
    pids: dict[str, list[int]] = {}
    for workers in (1, 2):
        config = peers.gateway_config(ups, free_port(), workers)
        new_name, old_name = f"gateway-{workers}", f"gateway-{workers} {old}"
        for name, (process, port) in (
            (new_name, peers.gateway(run / "baseline", config, f"new-{workers}")),
            (
                old_name,
                old_gateway(tree, run / "baseline", _fresh_port(config, fields), f"old-{workers}"),
            ),
        ):
            start(process)
            assert process.popen is not None
            urls[name] = f"http://127.0.0.1:{port}"
            pids[name] = footprint.worker_pids(process.popen.pid)
    steps.did("baseline", f"gateways from this tree and {tree} ({old}) ready", 0.0)
    assert upstream.popen is not None
    one_worker = [pids["gateway-1"], pids[f"gateway-1 {old}"]]
    with pinning.pinned(upstream.popen.pid, one_worker) as where:
        found = _measure(run, urls, pids, scripts, args, steps, tree, old)
    found["pinned"] = (
        "not pinned (one core)"
        if where is None
        else f"wrk and the upstream on core {sorted(where.load)}, the 1-worker gateways' "
        f"workers on core {sorted(where.gateway)}, the 2-worker gateways' free"
    )
    return found


def _measure(
    run: Path,
    urls: dict[str, str],
    pids: dict[str, list[int]],
    scripts: Path,
    args: Any,
    steps: Steps,
    tree: Path,
    old: str,
) -> dict[str, Any]:
    small = small_body(run)
    gateways = [name for name in urls if name != "direct"]
    found: dict[str, Any] = {
        "tree": str(tree),
        "label": old,
        "closed": {},
        "fixed": {},
        "pooled_p99": {},
    }

    closed = Load("/v2/models/m/infer", small, JSON_HEADERS, CLOSED_CONNECTIONS, args.seconds)
    warm_up(closed, (urls[name] for name in gateways), scripts)
    results = balanced(
        {name: closed.measure(urls[name], scripts) for name in gateways},
        args.rounds,
        steps.measured("baseline closed"),
    )
    for workers in (1, 2):
        new, older = results[f"gateway-{workers}"], results[f"gateway-{workers} {old}"]
        found["closed"][workers] = {
            "requests_per_s": Pair(
                [r.requests_per_s for r in new], [r.requests_per_s for r in older]
            ),
        }
    for rate, connections in p.FIXED_LOADS:
        load = Load("/v2/models/m/infer", small, JSON_HEADERS, connections, args.seconds, rate)
        warm_up(load, urls.values(), scripts)
        cpu: dict[str, list[float]] = {name: [] for name in gateways}
        targets = {"direct": load.measure(urls["direct"], scripts)}
        targets.update(
            {
                name: with_cpu(
                    load.measure(urls[name], scripts), pids[name], args.seconds, cpu[name]
                )
                for name in gateways
            }
        )
        results = balanced(targets, args.rounds, steps.measured(f"baseline {rate} req/s"))
        direct = results["direct"]
        per_rate: dict[int, dict[str, Pair]] = {}
        for workers in (1, 2):
            new, older = results[f"gateway-{workers}"], results[f"gateway-{workers} {old}"]
            per_rate[workers] = {
                label: Pair(
                    [getattr(r, attr) - getattr(d, attr) for r, d in zip(new, direct, strict=True)],
                    [
                        getattr(r, attr) - getattr(d, attr)
                        for r, d in zip(older, direct, strict=True)
                    ],
                )
                for label, attr in (("added p50", "p50_ms"), ("added p99", "p99_ms"))
            }
            per_rate[workers]["CPU us per request"] = Pair(
                cpu[f"gateway-{workers}"], cpu[f"gateway-{workers} {old}"]
            )
        found["fixed"][rate] = per_rate
        found["pooled_p99"][rate] = {
            workers: pooled_added_p99(
                results[f"gateway-{workers}"], results[f"gateway-{workers} {old}"], direct
            )
            for workers in (1, 2)
        }
    return found


def pooled_added_p99(
    new: list[WrkResult], old: list[WrkResult], direct: list[WrkResult]
) -> dict[str, float]:
    """The added p99 of new and of old, each pooled over the rounds, their ratio, and the
    ratio's bootstrap range over the rounds."""

    def added(runs: list[WrkResult], rounds: Sequence[int]) -> float:
        return pooled_percentile([runs[i] for i in rounds], 99.0) - pooled_percentile(
            [direct[i] for i in rounds], 99.0
        )

    def ratio(rounds: Sequence[int]) -> float:
        below = added(old, rounds)
        return added(new, rounds) / below if below > 0 else float("inf")

    every = range(len(direct))
    low, high = round_interval(len(direct), ratio)
    return {
        "new_ms": added(new, every),
        "old_ms": added(old, every),
        "ratio": ratio(every),
        "low": low,
        "high": high,
    }


def _fresh_port(config: dict[str, Any], fields: set[str]) -> dict[str, Any]:
    older = for_tree(config, fields)
    older["server"]["http"] = {**older["server"]["http"], "port": free_port()}
    return older


def targets(found: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """Issue 9's latency budget: against the older tree, closed-loop throughput at most 5%
    lower, added p50 and p99 at the fixed rates at most 5% higher."""
    if not found:
        return []
    old = found["label"]
    rows: list[tuple[str, str, bool]] = []
    for workers, figures in found["closed"].items():
        pair = figures["requests_per_s"]
        rows.append(
            (
                f"closed loop, {workers} worker(s): throughput >= 95% of {old}'s",
                f"{pair.ratio:.1%} ({pair.spread()})",
                pair.ratio >= 0.95,
            )
        )
    for rate, per_workers in found["fixed"].items():
        for workers, figures in per_workers.items():
            pair = figures["added p50"]
            rows.append(
                (
                    f"{rate} req/s, {workers} worker(s): added p50 <= 105% of {old}'s",
                    f"{statistics.median(pair.new):.3f} vs {statistics.median(pair.old):.3f}"
                    f" ms, {pair.ratio:.1%} ({pair.spread()})",
                    pair.ratio <= 1.05,
                )
            )
            pooled = found.get("pooled_p99", {}).get(rate, {}).get(workers)
            if pooled is not None:
                rows.append(
                    (
                        f"{rate} req/s, {workers} worker(s): added p99 (pooled over the rounds)"
                        f" <= 105% of {old}'s",
                        f"{pooled['new_ms']:.3f} vs {pooled['old_ms']:.3f} ms, "
                        f"{pooled['ratio']:.1%} (bootstrap over rounds "
                        f"{pooled['low']:.0%}-{pooled['high']:.0%})",
                        pooled["ratio"] <= 1.05,
                    )
                )
    return rows


def render(found: dict[str, Any]) -> list[str]:
    if not found:
        return []
    old = found["label"]
    out = [f"\nThis tree against {found['tree']} ({old}), new / old, median of per-round ratios"]
    if "pinned" in found:
        out.append(f"  {found['pinned']}")
    for workers, figures in found["closed"].items():
        pair = figures["requests_per_s"]
        out.append(
            f"  closed loop, {workers} worker(s): {statistics.median(pair.new):,.0f} vs "
            f"{statistics.median(pair.old):,.0f} req/s, {pair.ratio:.3f} ({pair.spread()})"
        )
    for rate, per_workers in found["fixed"].items():
        for workers, figures in per_workers.items():
            for label, pair in figures.items():
                out.append(
                    f"  {rate} req/s, {workers} worker(s), {label}: "
                    f"{statistics.median(pair.new):.3f} vs {statistics.median(pair.old):.3f}, "
                    f"{pair.ratio:.3f} ({pair.spread()})"
                )
            pooled = found.get("pooled_p99", {}).get(rate, {}).get(workers)
            if pooled is not None:
                out.append(
                    f"  {rate} req/s, {workers} worker(s), added p99 pooled over the rounds: "
                    f"{pooled['new_ms']:.3f} vs {pooled['old_ms']:.3f}, {pooled['ratio']:.3f} "
                    f"(bootstrap {pooled['low']:.2f}-{pooled['high']:.2f})"
                )
    return out
