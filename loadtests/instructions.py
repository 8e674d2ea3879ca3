"""Instructions per request of the benchmark's 1-worker gateway, from one or more source trees.

    python -m loadtests.instructions --tree /work/wt/base --tree . --requests 1000 \\
        [--set observability.tracing.enabled=true ...]

Each tree's gateway (``PYTHONPATH=DIR``, ``cwd=DIR``) runs the benchmark's config
(``peers.gateway_config``, 1 worker) in front of the no-op nginx upstream, under callgrind. After
start-up and a warm-up with instrumentation off, the worker's instructions (every thread) are
counted over ``--requests`` POSTs of the benchmark's small OIP JSON body on a few keep-alive
connections, then over ``--idle-s`` seconds with no traffic: the work the worker does on its
own (readiness probes, the config watcher), which also runs during the requests and is
reported per second so that it can be told apart. Instruction counts do not move with the
machine's load the way timings do. What still moves them is timing inside the gateway: with many
connections the adaptive concurrency limit (and so how many requests wait in the circuit
breaker's queue) follows measured latency; give each tree more than once (``--tree A --tree B
--tree A --tree B``) and compare the spread.

``--set key.path=value`` (a JSON value, else a string) overrides a config key in every tree. A
key of the benchmark's own config that an older tree refuses ("extra inputs") is left out of
that tree's config; a refused ``--set`` key is an error.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from deploy.local.process import ManagedProcess, free_port, http_ok
from loadtests import callgrind
from loadtests.bench_tools import report_missing
from loadtests.benchmark import peers
from loadtests.benchmark.cases import small_body
from loadtests.keepalive import request_bytes, send

READY_TIMEOUT_S = 300.0
_EXTRA = ": Extra inputs are not permitted"


@dataclass(frozen=True)
class Count:
    """One tree's measurement."""

    tree: Path
    requests: int
    instructions: int  # over the requests, every thread of the worker
    seconds: float  # how long the requests took
    idle_per_s: float  # instructions per second with no traffic
    dump: Path  # the requests' callgrind file, for callgrind_annotate

    @property
    def per_request(self) -> float:
        return self.instructions / self.requests

    @property
    def per_request_net(self) -> float:
        """Per request, less the idle work the requests' wall time would have had anyway."""
        return (self.instructions - self.idle_per_s * self.seconds) / self.requests


def parse_set(item: str) -> tuple[list[str], object]:
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--set wants key.path=value, got {item!r}")
    try:
        value: object = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.split("."), value


def apply_sets(config: dict[str, object], sets: Sequence[tuple[list[str], object]]) -> None:
    for path, value in sets:
        node = config
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[path[-1]] = value


def _drop(config: dict[str, object], path: list[str]) -> None:
    node: object = config
    for part in path[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(path[-1], None)


def tree_env(tree: Path) -> dict[str, str]:
    return {"PYTHONPATH": str(tree)}


def fit_config(
    tree: Path, config: dict[str, object], sets: Sequence[tuple[list[str], object]], run: Path
) -> dict[str, object]:
    """``config`` less the benchmark's keys that ``tree``'s gateway refuses as unknown."""
    config = copy.deepcopy(config)
    asked = {".".join(path) for path, _ in sets}
    path = run / "config.json"
    for _ in range(20):
        path.write_text(json.dumps(config))
        checked = subprocess.run(
            [sys.executable, "-m", "gateway", "validate", str(path)],
            capture_output=True,
            text=True,
            cwd=tree,
            env={**_base_env(), **tree_env(tree)},
            timeout=60,
        )
        if checked.returncode == 0:
            return config
        refused = [
            line.strip().removesuffix(_EXTRA)
            for line in checked.stderr.splitlines()
            if line.endswith(_EXTRA)
        ]
        if not refused or any(key in asked for key in refused):
            raise SystemExit(f"{tree} refuses the config:\n{checked.stderr}")
        for key in refused:
            _drop(config, key.split("."))
    raise SystemExit(f"{tree}: the config never validated")


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}


def gateway_source(tree: Path) -> Path:
    """Where ``tree``'s environment imports the gateway from (it must be the tree itself)."""
    out = subprocess.run(
        [sys.executable, "-c", "import gateway; print(gateway.__file__)"],
        capture_output=True, text=True, cwd=tree, env={**_base_env(), **tree_env(tree)},
        check=True, timeout=60,
    ).stdout  # fmt: skip
    return Path(out.strip()).resolve().parent


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            # local address "HEXIP:HEXPORT", state 0A = LISTEN, inode in field 9
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                inodes.add(fields[9])
    return inodes


def _descendants(pid: int) -> list[int]:
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += _descendants(int(child))
    return found


def worker_pid(leader: int, port: int) -> int:
    """The process (``leader`` or a descendant) that listens on ``port``."""
    sockets = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    for pid in _descendants(leader):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) in sockets:
                    return pid
            except OSError:
                continue
    raise RuntimeError(f"no process under {leader} listens on {port}")


def measure(
    tree: Path,
    config: dict[str, object],
    body: bytes,
    args: argparse.Namespace,
    run: Path,
) -> Count:
    port = free_port()
    server = config["server"]
    assert isinstance(server, dict)
    server["http"] = {"host": "127.0.0.1", "port": port}
    path = run / "gateway.json"
    path.write_text(json.dumps(config))
    argv = [sys.executable, "-m", "gateway", "serve", "--config", str(path)]
    process = ManagedProcess(
        "gateway",
        callgrind.wrap([*argv, "--log-level", "warning"], run),
        run,
        ready=lambda: http_ok(f"http://127.0.0.1:{port}/v2/health/live"),
        env=tree_env(tree),
        cwd=tree,
    )
    request = request_bytes(port, "/v2/models/m/infer", body, "application/json")
    process.start()
    try:
        process.wait_ready(READY_TIMEOUT_S)
        assert process.popen is not None
        pid = worker_pid(process.popen.pid, port)
        warm = asyncio.run(send(port, request, args.warmup, args.connections))
        with callgrind.Window(pid, run, 1) as window:
            started = time.monotonic()
            sent = asyncio.run(send(port, request, args.requests, args.connections))
            seconds = time.monotonic() - started
        if sent.failed or warm.failed:
            raise SystemExit(f"{tree}: {sent.failed + warm.failed} requests failed")
        with callgrind.Window(pid, run, 2) as idle:
            time.sleep(args.idle_s)
        return Count(
            tree,
            args.requests,
            window.instructions,
            seconds,
            idle.instructions / args.idle_s,
            window.path,
        )
    finally:
        process.stop()


def report(counts: Sequence[Count]) -> str:
    first = counts[0]
    lines = [
        f"{'tree':40} {'instr/request':>14} {'ratio':>7} {'net of idle':>12} {'ratio':>7}"
        f" {'idle instr/s':>13} {'req/s':>7}"
    ]
    for count in counts:
        lines.append(
            f"{count.tree!s:40} {count.per_request:14,.0f} "
            f"{count.per_request / first.per_request:7.3f} {count.per_request_net:12,.0f} "
            f"{count.per_request_net / first.per_request_net:7.3f} {count.idle_per_s:13,.0f}"
            f" {count.requests / count.seconds:7.1f}"
        )
    lines += [f"callgrind file: {count.dump}" for count in counts]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="python -m loadtests.instructions",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    root.add_argument("--tree", action="append", required=True, type=Path, metavar="DIR")
    root.add_argument("--requests", type=int, default=1000)
    root.add_argument("--warmup", type=int, default=200, help="requests before counting")
    root.add_argument("--connections", type=int, default=4)
    root.add_argument("--idle-s", type=float, default=5.0, help="seconds counted with no traffic")
    root.add_argument("--set", action="append", default=[], type=parse_set, metavar="KEY=VALUE")
    root.add_argument("--run-dir", type=Path, default=Path(".run/instructions"))
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if report_missing(("valgrind", "nginx")):
        return 2
    run = args.run_dir.resolve()
    upstream, ups = peers.upstream_nginx(run / "upstream")
    upstream.start()
    counts = []
    try:
        upstream.wait_ready(30)
        body = small_body(run).read_bytes()
        config = peers.gateway_config(ups, 0, 1)
        apply_sets(config, args.set)
        for index, tree in enumerate(args.tree):
            tree = tree.resolve()
            source = gateway_source(tree)
            if source != tree / "gateway":
                raise SystemExit(f"{tree}'s environment imports the gateway from {source}")
            tree_run = run / f"{index}-{tree.name}"
            for old in tree_run.glob("callgrind.*"):
                old.unlink()
            tree_run.mkdir(parents=True, exist_ok=True)
            fitted = fit_config(tree, config, args.set, tree_run)
            counts.append(measure(tree, fitted, body, args, tree_run))
            print(f"{tree}: {counts[-1].per_request:,.0f} instructions per request", flush=True)
    finally:
        upstream.stop()
    print(report(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
