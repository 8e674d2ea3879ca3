"""The local stack without Docker: real TorchServe, TF Serving (or its stand-in), real MLServer,
the gateway, and the rollout controller.

``python -m deploy.local.stack up`` starts them all in the background and returns once every
part is ready; ``down`` stops exactly the processes ``up`` recorded in the run directory.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from deploy.local.mlserver import MLServerPorts, mlserver_process
from deploy.local.process import ManagedProcess, StartError, http_ok, port_open, stop_group
from deploy.local.tfserving import (
    STANDIN_NAME,
    tfserving_process,
    uses_real_tfserving,
    write_model_config,
    write_monitoring_config,
)
from deploy.local.torchserve import TorchServePorts, key_file, torchserve_process
from gateway.config import GatewayConfig, load_config

REPO = Path(__file__).resolve().parents[2]
RUN_DIR = REPO / ".run"
MODEL_STORE = REPO / "model_store"
PARTS = ("torchserve", "tfserving", "mlserver", "gateway", "rollout")
ROLLOUT_PORT = 8003
ADMIN_URL = "http://127.0.0.1:8002"
ADMIN_TOKEN = "admin-token"
"""The admin API's token, under the run directory (``server.admin.token_file`` of
deploy/local/gateway.yaml); ``up`` writes a fresh one when there is none."""


@dataclass(frozen=True)
class StackPorts:
    gateway_http: int = 8000
    gateway_grpc: int | None = 8001
    torchserve: TorchServePorts = field(default_factory=TorchServePorts)
    tfserving_grpc: int = 8500
    tfserving_rest: int = 8501
    torchserve_key_file: Path | None = None
    """Where TorchServe writes its token-authorization keys, once known (see ``with_files``)."""
    tfserving_model_config: Path | None = None
    """The ModelServerConfig file TF Serving starts with, once known."""
    mlserver: MLServerPorts = field(default_factory=MLServerPorts)


def model_config_path(run_dir: Path) -> Path:
    return run_dir / "tfserving" / "models.config"


def with_files(run_dir: Path, ports: StackPorts) -> StackPorts:
    """``ports`` naming the files the backends of :func:`backend_processes` read and write."""
    return replace(
        ports,
        torchserve_key_file=key_file(run_dir / "torchserve"),
        tfserving_model_config=model_config_path(run_dir).resolve(),
    )


def backend_processes(run_dir: Path, ports: StackPorts) -> list[ManagedProcess]:
    """TorchServe with both digits archives, TF Serving with both SavedModel versions, and
    MLServer with both versions from the archives' TorchScript."""
    tf_dir = run_dir / "tfserving"
    model_config = write_model_config(
        model_config_path(run_dir), MODEL_STORE / "tfserving" / "digits"
    )
    monitoring = write_monitoring_config(tf_dir / "monitoring.config")
    return [
        torchserve_process(run_dir / "torchserve", MODEL_STORE / "torchserve", ports.torchserve),
        tfserving_process(
            tf_dir, model_config, ports.tfserving_grpc, ports.tfserving_rest, monitoring
        ),
        mlserver_process(run_dir / "mlserver", MODEL_STORE, ports.mlserver),
    ]


def gateway_process(
    run_dir: Path, config_path: Path, http_port: int, ready_path: str = "/v2/health/ready"
) -> ManagedProcess:
    """``gateway serve`` as a real process; ready when ``ready_path`` answers 200."""
    url = f"http://127.0.0.1:{http_port}{ready_path}"
    return ManagedProcess(
        name="gateway",
        argv=[sys.executable, "-m", "gateway", "serve", "--config", str(config_path)],
        run_dir=run_dir,
        ready=lambda: http_ok(url),
        cwd=REPO,
    )


def rollout_process(
    run_dir: Path, gateway_http: int, port: int = ROLLOUT_PORT, token_file: Path | None = None
) -> ManagedProcess:
    """``gateway rollout controller``: its state under the run directory, the gateway's own
    /metrics scraped (one replica here), the admin API driven; ready when /healthz answers."""
    return ManagedProcess(
        name="rollout",
        argv=[
            sys.executable,
            "-m",
            "gateway",
            "rollout",
            "controller",
            f"--state-dir={run_dir / 'state'}",
            f"--listen=127.0.0.1:{port}",
            f"--admin={ADMIN_URL}",
            f"--scrape=http://127.0.0.1:{gateway_http}/metrics",
            *([f"--token-file={token_file}"] if token_file is not None else []),
        ],
        run_dir=run_dir,
        ready=lambda: http_ok(f"http://127.0.0.1:{port}/healthz"),
        cwd=REPO,
    )


def start_all(processes: list[ManagedProcess], timeout: float = 120.0) -> dict[str, float]:
    """Start every process at once, then wait on each; stop them all if one fails."""
    started = time.monotonic()
    waited: dict[str, float] = {}
    try:
        for process in processes:
            process.start()
        for process in processes:
            process.wait_ready(timeout)
            waited[process.name] = time.monotonic() - started
    except BaseException:
        for process in processes:
            process.stop()
        raise
    return waited


def _running(run_dir: Path) -> list[str]:
    alive = []
    for part in PARTS:
        pid_file = run_dir / part / f"{part}.pid"
        if pid_file.exists():
            alive.append(part)
    return alive


def up(config_path: Path, run_dir: Path = RUN_DIR) -> int:
    config = load_config(config_path)
    if _running(run_dir):
        print(f"the local stack is already up ({', '.join(_running(run_dir))}); `make down` first")
        return 1
    ports = _ports(config)
    busy = [p for p in _all_ports(ports) if port_open("127.0.0.1", p)]
    if busy:
        print(f"ports already in use: {busy}; is another stack running?", file=sys.stderr)
        return 1
    token = admin_token(run_dir)
    backends = backend_processes(run_dir, ports)
    try:
        waited = start_all(backends)
        gateway = gateway_process(run_dir / "gateway", config_path.resolve(), ports.gateway_http)
        waited.update(start_all([gateway], timeout=30))
        rollout = rollout_process(run_dir / "rollout", ports.gateway_http, token_file=token)
        waited.update(start_all([rollout], 30))
    except StartError as error:
        print(error, file=sys.stderr)
        return 1
    tf_name = "TF Serving" if uses_real_tfserving() else STANDIN_NAME
    print("local stack up:")
    print(
        f"  TorchServe   inference :{ports.torchserve.inference}  management "
        f":{ports.torchserve.management}  metrics :{ports.torchserve.metrics}  "
        f"gRPC :{ports.torchserve.grpc_inference}  (ready in {waited['torchserve']:.1f}s)"
    )
    print(
        f"  {tf_name:<12} gRPC :{ports.tfserving_grpc}  REST :{ports.tfserving_rest}  "
        f"(ready in {waited['tfserving']:.1f}s)"
    )
    ml = ports.mlserver
    print(
        f"  MLServer     REST :{ml.http}  gRPC :{ml.grpc}  metrics :{ml.metrics}  "
        f"(ready in {waited['mlserver']:.1f}s)"
    )
    grpc = f"  gRPC :{ports.gateway_grpc}" if ports.gateway_grpc is not None else ""
    print(f"  gateway      http://127.0.0.1:{ports.gateway_http}{grpc}  (metrics at /metrics)")
    print(f"  rollouts     http://127.0.0.1:{ROLLOUT_PORT}  (gateway rollout status)")
    admin = config.server.admin
    if admin is not None:
        print(
            f"  admin API    http://{admin.host}:{admin.port}  "
            f"(export GATEWAY_ADMIN_TOKEN=$(cat {token.relative_to(REPO)}))"
        )
    print(f"logs and pids under {run_dir}; `make down` stops it all")
    return 0


def admin_token(run_dir: Path) -> Path:
    """The admin token's file, written (owner-only) with a fresh token if it is missing."""
    path = run_dir / ADMIN_TOKEN
    if not path.exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(32) + "\n")
    return path


def down(run_dir: Path = RUN_DIR) -> int:
    stopped = []
    for part in reversed(PARTS):
        pid_file = run_dir / part / f"{part}.pid"
        if not pid_file.exists():
            continue
        if stop_group(int(pid_file.read_text())):
            stopped.append(part)
        pid_file.unlink()
    print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
    return 0


def _ports(config: GatewayConfig) -> StackPorts:
    grpc = config.server.grpc
    return StackPorts(
        gateway_http=config.server.http.port, gateway_grpc=grpc.port if grpc is not None else None
    )


def _all_ports(ports: StackPorts) -> list[int]:
    ts = ports.torchserve
    return [
        ports.gateway_http,
        *([ports.gateway_grpc] if ports.gateway_grpc is not None else []),
        ts.inference,
        ts.management,
        ts.metrics,
        ts.grpc_inference,
        ts.grpc_management,
        ports.tfserving_grpc,
        ports.tfserving_rest,
        ports.mlserver.http,
        ports.mlserver.grpc,
        ports.mlserver.metrics,
        ROLLOUT_PORT,
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deploy.local.stack")
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--config", type=Path, default=REPO / "deploy/local/gateway.yaml")
    parser.add_argument("--run-dir", type=Path, default=RUN_DIR)
    args = parser.parse_args(argv)
    if args.action == "up":
        return up(args.config, args.run_dir)
    return down(args.run_dir)


if __name__ == "__main__":
    sys.exit(main())
