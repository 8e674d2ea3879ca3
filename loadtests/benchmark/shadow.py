"""What shadowing costs the primary: 1-worker gateways without shadowing and one that copies
100% of its traffic to a second variant, at fixed rates, interleaved.

The primary is variant ``a`` on upstream ``u1`` (nginx's fixed answer), the shadow variant ``b``
on ``u2`` (the same answer: every comparison agrees, so each request costs a full shadow call, a
decode of both answers and a comparison). All gateways get the same open-loop load; the client's
p99 is the primary's. The gateway's CPU time per request is measured too: on a machine shared
with other work it moves far less than a p99 does. After the run, the shadow gateway's own
counts say how many copies were compared and how many were dropped. The shadow work runs in
the worker's shadow process (``gateway-shadow``): its CPU per request is reported apart, and
the gateway's total is the sum.

Separating the gateway's effect from the machine's noise:

- *an A/A floor*: a second plain gateway, identical to the first, measured in the same rounds;
  its p99 over the first's is what a p99 moves with no change at all;
- *pooled p99s* (``pooled.py``): each target's p99 over all its rounds' requests together, over
  the plain gateway's the same way (the target's verdict), with a bootstrap range over the
  rounds; the per-round ratios and their median are shown too. The order in a round is rotated
  so that no target is always first;
- *the shadow variant on its own nginx, at idle priority* (``SCHED_IDLE``): in a deployment
  the shadow variant runs on other hardware; here its server would otherwise take the primary's
  cores and its event loop would queue the primary's calls behind the copies;
- *pinned cores* (``pinning.py``, with two cores or more): wrk and the primary's upstream on one
  core, each gateway's worker on another, so no target is luckier than another in where the
  scheduler puts it. The shadow process and the shadow upstream go on the load's core, at idle
  priority: off the worker's, as a deployment gives them cores of their own (a shadow process
  does about as much work per copy as the worker per request). On two cores that is still a
  neighbour: a plain gateway with an idle-priority process beside it as busy as the shadow
  process (1.8 ms of work every 20 ms, on the load's core) had its p99 at 500 req/s go from
  0.7-1.05 ms to 1.8-2.0 ms, every round, on a quiet machine.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import statistics
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from deploy.local.process import ManagedProcess, free_port
from loadtests.benchmark import footprint, peers, pinning
from loadtests.benchmark import plan as p
from loadtests.benchmark.cases import (
    Load,
    Measured,
    Starter,
    Summary,
    interleaved,
    small_body,
    warm_up,
)
from loadtests.benchmark.pooled import pooled_percentile, round_interval
from loadtests.benchmark.scrape import cpu_seconds
from loadtests.benchmark.steps import Steps
from loadtests.benchmark.wrk import WrkResult

JSON_HEADERS = {"Content-Type": "application/json"}
SHADOW_UPSTREAM = "the shadow variant on its own nginx (1 worker) under SCHED_IDLE"
SHADOW_METRIC = "gateway_shadow_requests_total"


def shadowing(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with model ``m`` served by ``a`` alone and copied entirely to ``b``."""
    shadowed = copy.deepcopy(config)
    model = shadowed["models"]["m"]
    for variant in model["variants"]:
        variant["weight"] = 1 if variant["name"] == "a" else 0
    model["shadow"] = {"variants": ["b"], "percent": 100}
    return shadowed


def plain(config: dict[str, Any]) -> dict[str, Any]:
    """The same routing without the shadow: ``a`` takes everything."""
    unshadowed = shadowing(config)
    del unshadowed["models"]["m"]["shadow"]
    return unshadowed


def shadow_counts(base_url: str) -> dict[str, float]:
    """The gateway's ``gateway_shadow_requests_total`` by result."""
    with urllib.request.urlopen(base_url + "/metrics", timeout=30) as response:
        text = response.read().decode()
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(SHADOW_METRIC + "{"):
            labels, number = line.rsplit(" ", 1)
            result = labels.split('result="', 1)[1].split('"', 1)[0]
            counts[result] = counts.get(result, 0.0) + float(number)
    return counts


def measure_shadow(
    run: Path,
    upstream: ManagedProcess,
    ups: peers.Upstreams,
    scripts: Path,
    args: argparse.Namespace,
    start: Starter,
    steps: Steps,
) -> dict[str, Any]:
    shadow_upstream, shadow_ups = peers.upstream_nginx(run / "shadow-upstream")
    start(shadow_upstream)
    assert shadow_upstream.popen is not None
    idle_priority(shadow_upstream.popen.pid)
    base = peers.gateway_config(
        peers.Upstreams(ups.first, shadow_ups.second, ups.sinks), free_port(), 1
    )
    configs = (plain(base), plain(base), shadowing(base))
    urls, pids = {}, {}
    for label, config in zip(p.SHADOW_TARGETS, configs, strict=True):
        config["server"]["http"]["port"] = free_port()
        name = label.replace(" ", "-").replace("(", "").replace(")", "").replace("/", "")
        process, port = peers.gateway(run / "gw-shadow", config, name)
        start(process)
        assert process.popen is not None
        urls[label] = f"http://127.0.0.1:{port}"
        if "shadow" in config["models"]["m"]:  # its worker's shadow process starts just after it
            _wait_for_shadow_process(process.popen.pid)
        pids[label] = footprint.worker_pids(process.popen.pid)
    small = small_body(run)
    assert upstream.popen is not None
    beside = shadow_side(shadow_upstream.popen.pid, pids)
    with pinning.pinned(upstream.popen.pid, pids.values(), beside) as where:
        found = _measure(urls, pids, small, scripts, args, steps)
    return {
        **found,
        "shadow_upstream": SHADOW_UPSTREAM,
        "pinned": _pinned(where),
    }


def shadow_side(shadow_upstream: int, workers: dict[str, list[int]]) -> list[int]:
    """The shadow upstream's nginx processes and the workers' shadow processes."""
    every_worker = [pid for pids in workers.values() for pid in pids]
    return [shadow_upstream, *pinning.children(shadow_upstream), *shadow_processes(every_worker)]


def _pinned(where: pinning.Placement | None) -> str:
    if where is None:
        return "not pinned (one core)"
    return (
        f"wrk and the primary's upstream on core {sorted(where.load)}, each gateway's worker on "
        f"core {sorted(where.gateway)}; the shadow process and the shadow upstream on core "
        f"{sorted(where.load)} too, at idle priority (off the worker's core)"
    )


def _measure(
    urls: dict[str, str],
    pids: dict[str, list[int]],
    small: Path,
    scripts: Path,
    args: argparse.Namespace,
    steps: Steps,
) -> dict[str, Any]:
    results: dict[str, Summary] = {}
    p99_rounds: dict[str, list[float]] = {}
    pooled: dict[int, dict[str, float]] = {}
    cpu_us: dict[str, float] = {}
    shadow_cpu_us: dict[str, float] = {}
    for rate, connections in p.SHADOW_LOADS:
        load = Load("/v2/models/m/infer", small, JSON_HEADERS, connections, args.seconds, rate)
        per_request: dict[str, list[float]] = {label: [] for label in p.SHADOW_TARGETS}
        shadow_per_request: dict[str, list[float]] = {label: [] for label in p.SHADOW_TARGETS}
        targets = {
            label: _with_cpu(
                load.measure(urls[label], scripts),
                pids[label],
                args.seconds,
                (per_request[label], shadow_per_request[label]),
            )
            for label in p.SHADOW_TARGETS
        }
        warm_up(load, (urls[label] for label in p.SHADOW_TARGETS), scripts)
        rounds: dict[str, list[float]] = {label: [] for label in p.SHADOW_TARGETS}
        runs: dict[str, list[WrkResult]] = {label: [] for label in p.SHADOW_TARGETS}
        shown = _keeping_p99(rounds, runs, steps.measured(f"shadow {rate} req/s"))
        pair = interleaved(targets, args.rounds, shown, rotate=True)
        pooled[rate] = pooled_p99(*(runs[label] for label in p.SHADOW_TARGETS))
        results.update({f"{label}, {rate} req/s": s for label, s in pair.items()})
        p99_rounds.update({f"{label}, {rate} req/s": v for label, v in rounds.items()})
        cpu_us.update(
            {f"{label}, {rate} req/s": statistics.median(v) for label, v in per_request.items()}
        )
        shadow_cpu_us.update(
            {
                f"{label}, {rate} req/s": statistics.median(v)
                for label, v in shadow_per_request.items()
                if v
            }
        )
    counts = shadow_counts(urls[p.SHADOW_TARGETS[-1]])
    steps.did(
        "shadow",
        f"shadow results {counts}",
        0.0,
        shadow_results=counts,
        cpu_us=cpu_us,
        shadow_process_cpu_us=shadow_cpu_us,
    )
    return {
        "fixed_rate": results,
        "p99_rounds": p99_rounds,
        "pooled_p99": pooled,
        "cpu_us_per_request": cpu_us,
        "shadow_process_cpu_us_per_request": shadow_cpu_us,
        "results": counts,
    }


def _keeping_p99(
    into: dict[str, list[float]], runs: dict[str, list[WrkResult]], shown: Measured
) -> Measured:
    """``shown``, also keeping each round's p99 and wrk result by target."""

    def measured(target: str, round_: int, result: WrkResult | Summary) -> None:
        into[target].append(result.p99_ms)
        if isinstance(result, WrkResult):
            runs[target].append(result)
        shown(target, round_, result)

    return measured


def pooled_p99(
    plain: list[WrkResult], twin: list[WrkResult], shadowed: list[WrkResult]
) -> dict[str, float]:
    """Each target's p99 over all its rounds' requests; the A/A twin's and the shadowing
    gateway's over the plain one's, minus 1, with bootstrap ranges over the rounds."""

    def over_plain(runs: list[WrkResult]) -> Callable[[Sequence[int]], float]:
        def ratio(rounds: Sequence[int]) -> float:
            below = pooled_percentile([plain[i] for i in rounds], 99.0)
            return pooled_percentile([runs[i] for i in rounds], 99.0) / below - 1

        return ratio

    every = range(len(plain))
    found = {
        "plain_ms": pooled_percentile(plain, 99.0),
        "aa_ms": pooled_percentile(twin, 99.0),
        "shadow_ms": pooled_percentile(shadowed, 99.0),
    }
    for name, runs in (("aa", twin), ("added", shadowed)):
        ratio = over_plain(runs)
        found[name] = ratio(every)
        found[f"{name}_low"], found[f"{name}_high"] = round_interval(len(plain), ratio)
    return found


def idle_priority(leader: int) -> None:
    """``leader`` and its children (nginx's master and worker) under ``SCHED_IDLE``."""
    children = Path(f"/proc/{leader}/task/{leader}/children").read_text().split()
    for pid in (leader, *map(int, children)):
        os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))


def _wait_for_shadow_process(leader: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not shadow_processes([leader, *footprint.worker_pids(leader)]):
        if time.monotonic() > deadline:
            raise RuntimeError("the shadowing gateway has no shadow process")
        time.sleep(0.05)


def shadow_processes(workers: list[int]) -> list[int]:
    """The workers' shadow processes (their children named ``gateway-shadow``)."""
    found = []
    for worker in workers:
        children = Path(f"/proc/{worker}/task/{worker}/children").read_text().split()
        for child in children:
            with contextlib.suppress(OSError):
                if Path(f"/proc/{child}/comm").read_text().strip() == "gateway-shadow":
                    found.append(int(child))
    return found


def _with_cpu(
    measure: Callable[[], WrkResult],
    workers: list[int],
    seconds: float,
    into: tuple[list[float], list[float]],
) -> Callable[[], WrkResult]:
    """``measure``, also appending the CPU microseconds per request of the workers and (if
    they have any) of their shadow processes to ``into``."""

    def run() -> WrkResult:
        shadows = shadow_processes(workers)
        before = cpu_seconds(workers), cpu_seconds(shadows)
        result = measure()
        requests = max(result.requests_per_s * seconds, 1.0)
        into[0].append((cpu_seconds(workers) - before[0]) * 1e6 / requests)
        if shadows:
            into[1].append((cpu_seconds(shadows) - before[1]) * 1e6 / requests)
        return result

    return run
