"""Configs and processes for tests that run the gateway in front of the real local stack."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from deploy.local.mlserver import MLServerPorts
from deploy.local.process import free_port
from deploy.local.stack import (
    StackPorts,
    backend_processes,
    gateway_process,
    start_all,
    with_files,
)
from deploy.local.torchserve import TorchServePorts
from gateway.backends.torchserve_keys import bearer, parse_key_file

VARIANTS = [
    {"name": "tf-v1", "backend": "tfserving", "version": 1, "weight": 40, "labels": ["stable"]},
    {"name": "torch-v1", "backend": "torchserve", "version": 1, "weight": 40, "labels": ["stable"]},
    {"name": "tf-v2", "backend": "tfserving", "version": 2, "weight": 10, "labels": ["canary"]},
    {"name": "torch-v2", "backend": "torchserve", "version": 2, "weight": 10, "labels": ["canary"]},
]


def free_stack_ports() -> StackPorts:
    return StackPorts(
        gateway_http=free_port(),
        torchserve=TorchServePorts(*(free_port() for _ in range(5))),
        tfserving_grpc=free_port(),
        tfserving_rest=free_port(),
        mlserver=MLServerPorts(free_port(), free_port(), free_port()),
    )


@contextlib.contextmanager
def running_backends(run_dir: Path) -> Iterator[StackPorts]:
    """A real TorchServe, TF Serving (or its stand-in) and MLServer on free ports, until the
    block ends."""
    ports = free_stack_ports()
    processes = backend_processes(run_dir, ports)
    start_all(processes, timeout=180)
    try:
        yield with_files(run_dir, ports)
    finally:
        for process in processes:
            process.stop()


def torchserve_auth(ports: StackPorts, role: str) -> dict[str, str]:
    """The Authorization header of TorchServe's ``inference`` or ``management`` API."""
    assert ports.torchserve_key_file is not None
    keys = parse_key_file(Path(ports.torchserve_key_file).read_bytes(), 0.0).keys
    return bearer(keys[role].value)


def backends_config(ports: StackPorts, **overrides: Any) -> dict[str, Any]:
    ts = ports.torchserve
    backends: dict[str, Any] = {
        "tfserving": {
            "kind": "tfserving",
            "grpc": f"127.0.0.1:{ports.tfserving_grpc}",
            "rest": f"http://127.0.0.1:{ports.tfserving_rest}",
            "protocol": "grpc",
            "timeout_s": 10,
        },
        "torchserve": {
            "kind": "torchserve",
            "inference": f"http://127.0.0.1:{ts.inference}",
            "management": f"http://127.0.0.1:{ts.management}",
            "metrics": f"http://127.0.0.1:{ts.metrics}",
            "grpc": f"127.0.0.1:{ts.grpc_inference}",
            "protocol": "rest",
            "timeout_s": 10,
        },
        "mlserver": {
            "kind": "oip",
            "runtime": "mlserver",
            "url": f"http://127.0.0.1:{ports.mlserver.http}",
            "grpc": f"127.0.0.1:{ports.mlserver.grpc}",
            "protocol": "grpc",
            "timeout_s": 10,
        },
    }
    if ports.torchserve_key_file is not None:
        backends["torchserve"]["key_file"] = str(ports.torchserve_key_file)
    if ports.tfserving_model_config is not None:
        backends["tfserving"]["model_config_file"] = str(ports.tfserving_model_config)
    for name, changes in overrides.items():
        backends[name] = {**backends.get(name, {}), **changes}
    return backends


BACKEND_ENTRIES = {
    "tf_grpc": ("tfserving", "grpc"),
    "tf_rest": ("tfserving", "rest"),
    "ts_rest": ("torchserve", "rest"),
    "ts_grpc": ("torchserve", "grpc"),
    "ml_rest": ("mlserver", "rest"),
    "ml_grpc": ("mlserver", "grpc"),
}
"""Six backend entries on the three servers: each server over each protocol it speaks."""


def every_protocol_config(ports: StackPorts, **server: Any) -> dict[str, Any]:
    """A gateway (HTTP and gRPC) whose ``digits`` has one variant per entry of
    ``BACKEND_ENTRIES`` and version, named ``<entry>-v<version>``, all at weight 1."""
    base = backends_config(ports)
    backends = {
        entry: {**base[name], "protocol": protocol}
        for entry, (name, protocol) in BACKEND_ENTRIES.items()
    }
    variants = [
        {"name": f"{entry}-v{version}", "backend": entry, "model": "digits", "version": version,
         "weight": 1, "labels": ["stable"] if version == 1 else ["canary"]}
        for entry in BACKEND_ENTRIES
        for version in (1, 2)
    ]  # fmt: skip
    grpc_listen = {"host": "127.0.0.1", "port": free_port()}
    return gateway_config(
        ports, models={"digits": {"variants": variants}}, backends=backends, grpc=grpc_listen,
        **server,
    )  # fmt: skip


def gateway_config(
    ports: StackPorts | None,
    models: dict[str, Any] | None = None,
    backends: dict[str, Any] | None = None,
    **server: Any,
) -> dict[str, Any]:
    """A gateway config for tests; ``ports`` (the session's backends) only when ``backends`` is
    not given."""
    if backends is None:
        assert ports is not None, "give the stack's ports or the backends"
        backends = backends_config(ports)
    return {
        "server": {
            "http": {"host": "127.0.0.1", "port": free_port()},
            "grpc": None,
            "readiness_interval_s": 0.5,
            "admin": None,  # tests that want it give it a free port
            **server,
        },
        "backends": backends,
        "models": models or {"digits": {"variants": VARIANTS}},
    }


@contextlib.contextmanager
def running_gateway(
    run_dir: Path, config: dict[str, Any], ready_path: str = "/v2/health/ready"
) -> Iterator[str]:
    """A real ``gateway serve`` process; yields its base URL, stops it afterwards."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    port = config["server"]["http"]["port"]
    process = gateway_process(run_dir, path, port, ready_path)
    start_all([process], timeout=60)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()
    # Nothing may go wrong silently: a traceback or a warning in the gateway's log fails the test.
    log = process.log_path.read_text(errors="replace")
    for marker in ("Traceback", "Warning:", "ERROR"):
        assert marker not in log, f"gateway log {process.log_path} has {marker!r}:\n{log[-3000:]}"
