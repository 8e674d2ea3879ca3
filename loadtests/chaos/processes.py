"""The real processes of a scenario: ``gateway serve`` with a config written for it, and what a
scenario asks of it (readiness of its models, its workers' memory, a signal)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from deploy.local.process import ManagedProcess, StartError, free_port, http_ok
from deploy.local.stack import start_all
from loadtests.chaos.figures import Figure, judged

REPO = Path(__file__).resolve().parents[2]


def gateway_config(
    backends: dict[str, Any], models: dict[str, Any], workers: int = 1, **server: Any
) -> dict[str, Any]:
    """A config on a free loopback port, no gRPC, no admin API, readiness probed every 0.5 s."""
    return {
        "server": {
            "http": {"host": "127.0.0.1", "port": free_port()},
            "grpc": None,
            "workers": workers,
            "readiness_interval_s": 0.5,
            "admin": None,  # its default port is a fixed one
            **server,
        },
        "backends": backends,
        "models": models,
    }


def oip_backend(port: int, **knobs: Any) -> dict[str, Any]:
    """A ``kind: oip`` backend at a fault server (JSON tensors, as the fault servers read)."""
    return {"kind": "oip", "url": f"http://127.0.0.1:{port}", "binary_tensors": False, **knobs}


def one_variant(backend: str, name: str = "only") -> dict[str, Any]:
    return {"variants": [{"name": name, "backend": backend, "version": 1, "weight": 1}]}


class Gateway:
    """A running ``gateway serve``; ``url`` is its HTTP base."""

    def __init__(self, run_dir: Path, config: dict[str, Any]) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.port = int(config["server"]["http"]["port"])
        self.url = f"http://127.0.0.1:{self.port}"
        path = run_dir / "gateway.json"  # JSON is YAML, and loads fast
        path.write_text(json.dumps(config, indent=1))
        self.process = ManagedProcess(
            name="gateway",
            argv=[sys.executable, "-m", "gateway", "serve", "--config", str(path)],
            run_dir=run_dir,
            ready=lambda: "gateway ready" in self.log,
            cwd=REPO,
        )

    @property
    def log(self) -> str:
        try:
            return self.process.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_figure(self, scenario: str) -> Figure:
        """Nothing the clients or backends did may cost the gateway a traceback."""
        count = self.log.count("Traceback")
        return judged(scenario, "tracebacks in the gateway's log", count, "", "0", count == 0)

    @property
    def pid(self) -> int:
        assert self.process.popen is not None
        return self.process.popen.pid

    def workers(self) -> list[int]:
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        return [int(pid) for pid in children if b"spawn_main" in _cmdline(int(pid))] or [self.pid]

    def rss_bytes(self) -> int:
        """Resident memory of the workers (the supervisor's own is not on the request path)."""
        return sum(_rss(pid) for pid in self.workers())

    def wait_models_ready(self, models: Sequence[str], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        for model in models:
            while not http_ok(f"{self.url}/v2/models/{model}/ready"):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"model {model} not ready after {timeout:.0f}s")
                time.sleep(0.1)

    def wait_variants_ready(
        self, model: str, variants: Sequence[str], timeout: float = 60.0, polls: int = 6
    ) -> None:
        """Until ``polls`` metadata answers in a row (new connections: any worker) say ready."""
        deadline, in_a_row = time.monotonic() + timeout, 0
        while in_a_row < polls:
            doc = get_json(f"{self.url}/v2/models/{model}") or {}
            ready = {v["name"] for v in doc.get("variants", []) if v.get("ready")}
            in_a_row = in_a_row + 1 if set(variants) <= ready else 0
            if time.monotonic() > deadline:
                raise TimeoutError(f"variants {variants} of {model} not ready in {timeout:.0f}s")
            time.sleep(0.1)

    def terminate(self) -> None:
        """SIGTERM to the supervisor only, as systemd, compose or Kubernetes send it."""
        os.kill(self.pid, signal.SIGTERM)

    def wait_exit(self, timeout: float) -> int | None:
        assert self.process.popen is not None
        with contextlib.suppress(Exception):
            return self.process.popen.wait(timeout)
        return None


@contextlib.contextmanager
def running_gateway(run_dir: Path, config: dict[str, Any]) -> Iterator[Gateway]:
    gateway = Gateway(run_dir, config)
    start_all([gateway.process], timeout=60)
    try:
        yield gateway
    finally:
        gateway.process.stop()


@contextlib.contextmanager
def running(processes: Sequence[ManagedProcess], timeout: float = 30) -> Iterator[None]:
    start_all(list(processes), timeout=timeout)
    try:
        yield
    finally:
        for process in processes:
            process.stop()


def why_not_started(error: StartError) -> str:
    """The config problem a gateway refused to start with, else the error's first line."""
    text = str(error)
    if "invalid gateway config" in text:
        problems = text.split("invalid gateway config", 1)[1].splitlines()[1:]
        return "config refused: " + "; ".join(p.strip() for p in problems if p.strip())
    return text.splitlines()[0]


def get_json(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
