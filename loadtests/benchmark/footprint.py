"""What a gateway process costs besides latency: memory, start-up time, routing work."""

from __future__ import annotations

import random
import time
import timeit
from pathlib import Path

from deploy.local.process import ManagedProcess, http_ok
from gateway.backends.base import BackendModel
from gateway.routing.router import ModelRoute, Router, Variant


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def worker_pids(leader: int) -> list[int]:
    """The leader's children (several workers), or the leader itself (one worker)."""
    children = Path(f"/proc/{leader}/task/{leader}/children").read_text().split()
    workers = [int(pid) for pid in children if _is_python(int(pid))]
    return workers or [leader]


def _is_python(pid: int) -> bool:
    try:
        return "python" in Path(f"/proc/{pid}/comm").read_text()
    except OSError:
        return False


def startup(process: ManagedProcess, port: int, timeout: float = 60.0) -> tuple[float, float]:
    """Seconds from spawn to live, and to ready."""
    started = time.monotonic()
    process.start()
    live = ready = None
    while time.monotonic() - started < timeout and ready is None:
        now = time.monotonic() - started
        if live is None and http_ok(f"http://127.0.0.1:{port}/v2/health/live", timeout=0.2):
            live = now
        if live is not None and http_ok(f"http://127.0.0.1:{port}/v2/health/ready", timeout=0.2):
            ready = now
        time.sleep(0.01)
    if live is None or ready is None:
        raise RuntimeError(f"gateway not ready within {timeout}s")
    return live, ready


class _NoBackend:
    name = "none"
    kind = "none"
    protocol = "none"
    timeout_s = 1.0


def routing_cost_us(models: int, sticky: bool) -> float:
    """Microseconds per routing decision with this many configured models (in process)."""
    backend = _NoBackend()
    routes = [
        ModelRoute(
            f"model-{i}",
            [
                Variant(f"model-{i}", "a", backend, BackendModel("m", "1"), 90),  # type: ignore[arg-type]
                Variant(f"model-{i}", "b", backend, BackendModel("m", "1"), 10),  # type: ignore[arg-type]
            ],
        )
        for i in range(models)
    ]
    router = Router(routes)
    names = [f"model-{random.randrange(models)}" for _ in range(1000)]
    keys = [f"user-{i}" for i in range(1000)]
    for name in set(names):
        router.route(name, None, None, None, "warm-up" if sticky else None)
    loops = 20

    def decide() -> None:
        for name, key in zip(names, keys, strict=True):
            router.route(name, None, None, None, key if sticky else None)

    seconds = min(timeit.repeat(decide, number=loops, repeat=5))
    return seconds / (loops * len(names)) * 1e6
