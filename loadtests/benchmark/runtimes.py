"""Real digits through the gateway to each runtime of the local stack, and to two of them direct.

The same one-row OIP JSON request, pinned with ``x-gateway-variant`` to version 1 on: MLServer
over the Open Inference Protocol's REST and gRPC, TorchServe over REST, and the TF Serving
stand-in over gRPC (the stand-in runs TensorFlow in Python: it is not TF Serving's C++ server).
MLServer REST and TorchServe REST take that body as it is, so they are also measured direct.

``make bench`` runs it as the ``runtimes`` case, at 100 req/s; ``python -m
loadtests.benchmark.runtimes [--closed]`` runs it alone (needs Debian's ``wrk``), on free ports,
``--closed`` adding a closed loop over one connection.
"""

from __future__ import annotations

import argparse
import http.client
import sys
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from deploy.local.mlserver import MLServerPorts
from deploy.local.process import ManagedProcess, free_port
from deploy.local.stack import StackPorts, backend_processes, start_all, with_files
from deploy.local.torchserve import TorchServePorts
from gateway.backends.torchserve_keys import INFERENCE, bearer, parse_key_file
from loadtests.benchmark import peers
from loadtests.benchmark import plan as p
from loadtests.benchmark.cases import Load, Summary, digits_body, interleaved
from loadtests.benchmark.steps import Steps

REPO = Path(__file__).resolve().parents[2]
JSON_HEADERS = {"Content-Type": "application/json"}
THROUGH_GATEWAY = p.RUNTIMES_THROUGH_GATEWAY
Starter = Callable[[ManagedProcess, float], None]


def free_ports() -> StackPorts:
    return StackPorts(
        gateway_http=free_port(),
        gateway_grpc=None,
        torchserve=TorchServePorts(*(free_port() for _ in range(5))),
        tfserving_grpc=free_port(),
        tfserving_rest=free_port(),
        mlserver=MLServerPorts(free_port(), free_port(), free_port()),
    )


def gateway_config(ports: StackPorts) -> dict[str, object]:
    ts, ml = ports.torchserve, ports.mlserver
    mlserver = {
        "kind": "oip",
        "runtime": "mlserver",
        "url": f"http://127.0.0.1:{ml.http}",
        "grpc": f"127.0.0.1:{ml.grpc}",
    }
    backends = {
        "ml-rest": {**mlserver, "protocol": "rest"},
        "ml-grpc": {**mlserver, "protocol": "grpc"},
        "ts-rest": {
            "kind": "torchserve",
            "inference": f"http://127.0.0.1:{ts.inference}",
            "management": f"http://127.0.0.1:{ts.management}",
            **(
                {"key_file": str(ports.torchserve_key_file)}
                if ports.torchserve_key_file is not None
                else {}
            ),
        },
        "tf-grpc": {
            "kind": "tfserving",
            "grpc": f"127.0.0.1:{ports.tfserving_grpc}",
            "rest": f"http://127.0.0.1:{ports.tfserving_rest}",
        },
    }
    variants = [
        {"name": f"{backend}-v1", "backend": backend, "model": "digits", "version": 1, "weight": 1}
        for backend in backends
    ]
    return {
        "server": {
            "http": {"host": "127.0.0.1", "port": ports.gateway_http},
            "grpc": None,
            "admin": None,
        },
        "backends": backends,
        "models": {"digits": {"variants": variants}},
    }


CLOSED_LOAD = ("closed c1", 1, None)  # one connection, back to back: latency without queueing
Loads = tuple[tuple[str, int, float | None], ...]


def measure_runtimes(
    run: Path,
    seconds: float,
    rounds: int,
    start: Starter,
    steps: Steps | None = None,
    loads: Loads = p.RUNTIMES_LOADS,
) -> dict[str, Summary]:
    """Start the three runtimes and a 1-worker gateway (through ``start``, which also stops
    them), then measure every target at each load, interleaved; ``steps`` shows the progress."""
    ports = free_ports()
    for process in backend_processes(run / "runtimes", ports):
        start(process, 180.0)
    ports = with_files(run / "runtimes", ports)  # TorchServe's keys: token authorization is on
    gateway, port = peers.gateway(
        run / "gw-runtimes", gateway_config(ports), "gateway-runtimes", "/v2/health/ready"
    )
    start(gateway, 60.0)
    if steps is not None:
        steps.did("runtimes", "the three runtimes and a gateway ready", p.RUNTIMES_START_S)
    body = digits_body(run)
    gateway_url = f"http://127.0.0.1:{port}"
    ml_url = f"http://127.0.0.1:{ports.mlserver.http}"
    ts_url = f"http://127.0.0.1:{ports.torchserve.inference}"
    ml_direct, ts_direct = p.RUNTIMES_DIRECT
    assert ports.torchserve_key_file is not None
    keys = parse_key_file(ports.torchserve_key_file.read_bytes(), time.time()).keys
    ts_key = bearer(keys[INFERENCE].value)
    paths: dict[str, tuple[str, str, dict[str, str]]] = {
        ml_direct: (ml_url, "/v2/models/digits/versions/1/infer", {}),
        ts_direct: (ts_url, "/predictions/digits/1", ts_key),
    }
    for name, variant in THROUGH_GATEWAY.items():
        paths[name] = (gateway_url, "/v2/models/digits/infer", {"x-gateway-variant": variant})
    for url, path, extra in paths.values():
        warm_up(url + path, body.read_bytes(), extra)
    results: dict[str, Summary] = {}
    for label, connections, rate in loads:
        targets = {}
        for name, (url, path, extra) in paths.items():
            load = Load(path, body, {**JSON_HEADERS, **extra}, connections, seconds, rate)
            targets[name] = load.measure(url, scripts(run, name.replace(" ", "_")))
        done = steps.measured(f"runtimes {label}") if steps is not None else None
        measured = interleaved(targets, rounds, done)
        results.update({f"{name}, {label}": summary for name, summary in measured.items()})
    return results


def warm_up(url: str, body: bytes, extra: dict[str, str], requests: int = 200) -> None:
    """Connections, caches and lazy initialisation, before anything is timed; all must be 200."""
    parts = urllib.parse.urlsplit(url)
    headers = {**JSON_HEADERS, **extra}
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        for _ in range(requests):
            connection.request("POST", parts.path, body, headers)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"{url} ({extra}) answered {response.status}")
    finally:
        connection.close()


def scripts(run: Path, target: str) -> Path:
    """One folder of wrk scripts per target: a script is named by path, body and load only."""
    folder = run / "scripts" / target
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def render(results: dict[str, Summary]) -> str:
    lines = [f"  {'target':<48}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"]
    for name, s in results.items():
        lines.append(
            f"  {name:<48}{s.requests_per_s:>8.1f}{s.p50_ms:>9.2f}{s.p99_ms:>9.2f}{s.errors:>8}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loadtests.benchmark.runtimes", description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0, help="length of one wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--closed", action="store_true", help="also a closed loop, 1 connection")
    args = parser.parse_args(argv)
    run = REPO / ".run/bench-runtimes"
    started: list[ManagedProcess] = []

    def start(process: ManagedProcess, timeout: float = 60.0) -> None:
        started.append(process)
        start_all([process], timeout)

    try:
        loads = (*p.RUNTIMES_LOADS, CLOSED_LOAD) if args.closed else p.RUNTIMES_LOADS
        results = measure_runtimes(run, args.seconds, args.rounds, start, loads=loads)
    finally:
        for process in reversed(started):
            process.stop()
    print("Real digits, one row, OIP JSON; medians of interleaved wrk runs")
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
