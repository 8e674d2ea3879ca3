"""A/B of gateway checkouts: the same 1-worker config, the same nginx upstream, one run.

``python -m loadtests.benchmark.ab base=/path/to/checkout new=. --rounds 3 --seconds 5``
starts one gateway per checkout (``cwd`` and ``PYTHONPATH`` that checkout, this venv's python)
and drives them alternately with wrk: closed loop (32 connections, as ``make bench``), then a
fixed rate, where the figure is the worker's CPU time per request (``/proc/<pid>/stat``), which
the neighbours' load moves much less than throughput. Medians of the rounds are printed, and
each round as it is measured.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

from deploy.local.process import ManagedProcess, free_port, http_ok
from loadtests.benchmark import footprint, peers
from loadtests.benchmark.cases import Load, interleaved, small_body
from loadtests.benchmark.tracing import _counting_cpu
from loadtests.benchmark.wrk import WrkResult

REPO = Path(__file__).resolve().parents[2]
JSON_HEADERS = {"Content-Type": "application/json"}


def gateway_of(run: Path, name: str, checkout: Path, config: dict[str, object]) -> ManagedProcess:
    """A 1-worker gateway of ``checkout``; a checkout without the admin listener gets no key."""
    server = config["server"]
    assert isinstance(server, dict)
    if not (checkout / "gateway/control").is_dir():
        server.pop("admin", None)
    run.mkdir(parents=True, exist_ok=True)
    path = run / f"{name}.json"
    path.write_text(json.dumps(config))
    port = int(server["http"]["port"])
    return ManagedProcess(
        name,
        [sys.executable, "-m", "gateway", "serve", "--config", str(path), "--log-level", "warning"],
        run,
        ready=lambda: http_ok(f"http://127.0.0.1:{port}/v2/health/live"),
        env={"PYTHONPATH": str(checkout)},
        cwd=checkout,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loadtests.benchmark.ab", description=__doc__)
    parser.add_argument("trees", nargs="+", help="NAME=CHECKOUT, two or more")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rate", type=float, default=1000.0, help="0: no fixed-rate part")
    parser.add_argument("--rate-connections", type=int, default=20)
    args = parser.parse_args(argv)
    trees = {name: Path(path).resolve() for name, path in (t.split("=", 1) for t in args.trees)}
    run = REPO / ".run/ab"
    shutil.rmtree(run, ignore_errors=True)
    (run / "scripts").mkdir(parents=True)
    started: list[ManagedProcess] = []
    try:
        upstream, ups = peers.upstream_nginx(run / "upstream")
        upstream.start()
        started.append(upstream)
        upstream.wait_ready(30)
        urls: dict[str, str] = {}
        pids: dict[str, int] = {}
        for name, checkout in trees.items():
            port = free_port()
            process = gateway_of(run / name, name, checkout, peers.gateway_config(ups, port, 1))
            process.start()
            started.append(process)
            process.wait_ready(60)
            assert process.popen is not None
            urls[name] = f"http://127.0.0.1:{port}"
            pids[name] = footprint.worker_pids(process.popen.pid)[0]
        body = small_body(run)
        say = _printer()
        closed = Load("/v2/models/m/infer", body, JSON_HEADERS, args.connections, args.seconds)
        for url in urls.values():  # warm up: connections, caches, the estimate
            closed.measure(url, run / "scripts")()
        medians = interleaved(
            {name: closed.measure(url, run / "scripts") for name, url in urls.items()},
            args.rounds,
            lambda name, round_, result: say("closed", name, round_, result),
        )
        print("\nclosed loop, medians:")
        for name, summary in medians.items():
            print(
                f"  {name:>10}: {summary.requests_per_s:8.0f} req/s  p50 {summary.p50_ms:.3f} ms"
                f"  p99 {summary.p99_ms:.3f} ms  errors {summary.errors}"
            )
        if args.rate > 0:
            fixed = Load(
                "/v2/models/m/infer", body, JSON_HEADERS, args.rate_connections, args.seconds,
                args.rate,
            )  # fmt: skip
            cpu: dict[str, list[float]] = {name: [] for name in urls}
            targets: dict[str, Callable[[], WrkResult]] = {
                name: _counting_cpu(
                    fixed.measure(url, run / "scripts"), pids[name], args.seconds, cpu[name]
                )
                for name, url in urls.items()
            }
            rated = interleaved(
                targets,
                args.rounds,
                lambda name, round_, result: say(
                    f"{args.rate:.0f}/s", name, round_, result, cpu[name][-1]
                ),
            )
            print(f"\nfixed {args.rate:.0f} req/s, medians:")
            for name, summary in rated.items():
                print(
                    f"  {name:>10}: CPU {statistics.median(cpu[name]):6.1f} us/request"
                    f"  p50 {summary.p50_ms:.3f} ms  p99 {summary.p99_ms:.3f} ms"
                )
    finally:
        for process in reversed(started):
            process.stop()
    return 0


def _printer() -> Callable[..., None]:
    def say(case: str, name: str, round_: int, result: object, cpu_us: float | None = None) -> None:
        assert isinstance(result, WrkResult)
        extra = "" if cpu_us is None else f"  CPU {cpu_us:.1f} us/request"
        print(
            f"{case:>8} round {round_} {name:>10}: {result.requests_per_s:8.0f} req/s"
            f"  p50 {result.p50_ms:.3f} ms  p99 {result.p99_ms:.3f} ms{extra}",
            flush=True,
        )

    return say


if __name__ == "__main__":
    sys.exit(main())
