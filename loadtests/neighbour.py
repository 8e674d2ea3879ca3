"""What a busy neighbour costs a gateway's p99 on this machine, with no gateway change at all.

``python -m loadtests.neighbour --work-ms 1.8 --rate 500`` starts the benchmark's upstream and
one plain 1-worker gateway, pinned as the shadow case pins them (wrk and the upstream on one
core, the worker on another), and measures the same open-loop load in alternating rounds with
and without a *neighbour*: a process at ``SCHED_IDLE`` on the load's core that does
``--work-ms`` of JSON work (and touches 2 MiB) every 20 ms, the duty cycle of a shadow process
copying 100% of 500 req/s (about 170 us per copy, 10 copies per 20 ms flush). If the plain
gateway's p99 moves with the neighbour as much as with shadowing, the shadow case is measuring
the machine, not the hand-off in the worker.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from deploy.local.process import ManagedProcess, free_port
from loadtests.benchmark import footprint, peers, pinning
from loadtests.benchmark.cases import Load, small_body, warm_up
from loadtests.benchmark.pooled import pooled_percentile
from loadtests.benchmark.wrk import WrkResult

PERIOD_S = 0.02
DOC = {"outputs": [{"name": "o", "datatype": "FP32", "shape": [1, 24], "data": [0.1] * 24}]}


def busy(work_s: float, core: int | None, until: float) -> None:
    """The neighbour's loop: ``work_s`` of work every ``PERIOD_S``, at idle priority."""
    if core is not None:
        os.sched_setaffinity(0, {core})
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    memory = bytearray(2 << 20)
    step = 0
    while time.monotonic() < until:
        began = time.perf_counter()
        while time.perf_counter() - began < work_s:
            json.loads(json.dumps(DOC))
            memory[(step * 4096) % len(memory)] = step & 255
            step += 1
        time.sleep(max(0.0, PERIOD_S - (time.perf_counter() - began)))


@contextmanager
def neighbour(work_ms: float, core: int | None, limit_s: float) -> Iterator[int]:
    """A neighbour process while inside (it also ends by itself after ``limit_s``)."""
    code = f"from loadtests.neighbour import busy; import time; busy({work_ms / 1000}, "
    code += f"{core}, time.monotonic() + {limit_s})"
    process = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).parent.parent)
    try:
        deadline = time.monotonic() + 30
        while os.sched_getscheduler(process.pid) != os.SCHED_IDLE:  # it has started working
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the neighbour did not start (exit {process.returncode})")
            time.sleep(0.01)
        yield process.pid
    finally:
        process.kill()
        process.wait()


def measure(work_ms: float, rate: int, rounds: int, seconds: float, run: Path) -> dict[str, float]:
    started: list[ManagedProcess] = []

    def start(process: ManagedProcess) -> None:
        process.start()
        started.append(process)
        process.wait_ready(60)

    try:
        upstream, ups = peers.upstream_nginx(run / "upstream")
        start(upstream)
        gateway, port = peers.gateway(
            run / "gateway", peers.gateway_config(ups, free_port(), 1), "plain"
        )
        start(gateway)
        assert upstream.popen is not None
        assert gateway.popen is not None
        scripts = run / "scripts"
        scripts.mkdir(parents=True, exist_ok=True)
        load = Load(
            "/v2/models/m/infer",
            small_body(run),
            {"Content-Type": "application/json"},
            10,
            seconds,
            rate,
        )
        url = f"http://127.0.0.1:{port}"
        results: dict[str, list[WrkResult]] = {"alone": [], "neighbour": []}
        workers = footprint.worker_pids(gateway.popen.pid)
        with pinning.pinned(upstream.popen.pid, [workers]) as where:
            load_core = None if where is None else min(where.load)
            warm_up(load, [url], scripts)
            for round_ in range(rounds):
                for mode in ("alone", "neighbour") if round_ % 2 == 0 else ("neighbour", "alone"):
                    if mode == "neighbour":
                        with neighbour(work_ms, load_core, seconds + 30):
                            result = load.measure(url, scripts)()
                    else:
                        result = load.measure(url, scripts)()
                    results[mode].append(result)
                    print(
                        f"  round {round_ + 1}/{rounds}, {mode:<9}: p50 {result.p50_ms:.3f} ms,"
                        f" p99 {result.p99_ms:.3f} ms",
                        flush=True,
                    )
        alone, beside = (pooled_percentile(results[m], 99.0) for m in ("alone", "neighbour"))
        per_round = [
            n.p99_ms / a.p99_ms - 1
            for a, n in zip(results["alone"], results["neighbour"], strict=True)
        ]
        return {
            "alone_p99_ms": alone,
            "neighbour_p99_ms": beside,
            "pooled_added": beside / alone - 1,
            "median_round_added": statistics.median(per_round),
        }
    finally:
        for process in reversed(started):
            process.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-ms", type=float, default=1.8, help="work per 20 ms")
    parser.add_argument("--rate", type=int, default=500, help="requests/s, open loop")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--run-dir", type=Path, default=Path(".run/neighbour"))
    args = parser.parse_args(argv)
    found = measure(args.work_ms, args.rate, args.rounds, args.seconds, args.run_dir.resolve())
    print(
        f"{args.rate} req/s, plain 1-worker gateway; neighbour: {args.work_ms} ms of work per "
        f"20 ms at SCHED_IDLE on the load's core\n"
        f"  pooled p99 alone {found['alone_p99_ms']:.3f} ms, beside the neighbour "
        f"{found['neighbour_p99_ms']:.3f} ms: {found['pooled_added']:+.1%} "
        f"(median of per-round ratios {found['median_round_added']:+.1%})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
