"""The admin API from tests: calls with the bearer token, a load that counts every answer, and
``gateway_config_version`` as the workers report it."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploy.local.process import free_port
from tests.support.http import DIGITS, Reply, call, infer
from tests.support.stack import running_gateway

TOKEN = "test-admin-token-0123456789"


def admin_server(run_dir: Path, token: str | None = TOKEN, **extra: Any) -> dict[str, Any]:
    """``server`` keys for a gateway with its admin API on a free port, the token in a file,
    and its state in ``run_dir/state``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    admin: dict[str, Any] = {"host": "127.0.0.1", "port": free_port()}
    if token is not None:
        token_file = run_dir / "admin-token"
        token_file.write_text(token + "\n")
        admin["token_file"] = str(token_file)
    return {"admin": admin, "state_dir": str(run_dir / "state"), **extra}


def admin_url(config: dict[str, Any]) -> str:
    return f"http://127.0.0.1:{config['server']['admin']['port']}"


@contextlib.contextmanager
def running_admin_gateway(
    run_dir: Path, config: dict[str, Any], ready_path: str = "/v2/health/ready"
) -> Iterator[tuple[str, str]]:
    """``running_gateway`` that also waits for the admin listener (one worker opens it just
    after its HTTP port); yields the gateway's URL and the admin API's."""
    with running_gateway(run_dir, config, ready_path) as url:
        port = config["server"]["admin"]["port"]
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), 1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        yield url, admin_url(config)


def admin(url: str, method: str, path: str, body: Any = None, token: str | None = TOKEN) -> Reply:
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    return call(url + path, data, headers, method)


def weights(url: str, model: str = "digits") -> dict[str, int]:
    reply = admin(url, "GET", f"/admin/models/{model}")
    assert reply.status == 200, reply.body
    return {v["name"]: v["weight"] for v in reply.json()["variants"]}


def worker_versions(gateway_url: str) -> dict[str, tuple[int, str]]:
    """pid -> (number, digest) of every worker, from one scrape."""
    found: dict[str, tuple[int, str]] = {}
    for line in call(gateway_url + "/metrics").body.decode().splitlines():
        if line.startswith("gateway_config_version{"):
            labels, value = line[len("gateway_config_version{") :].rsplit("} ", 1)
            parts = dict(item.split("=", 1) for item in labels.split(","))
            pid = parts.get("pid", '"-"').strip('"')
            found[pid] = (int(float(value)), parts["digest"].strip('"'))
    return found


@dataclass
class Load:
    """Requests sent by a few threads until stopped: every status, and the variant that served."""

    statuses: Counter[int] = field(default_factory=Counter)
    variants: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())


@contextlib.contextmanager
def load(gateway_url: str, threads: int = 3, pause_s: float = 0.0) -> Iterator[Load]:
    """Unpinned inference requests, each on a new connection (so every worker takes some)."""
    result = Load()
    stop = threading.Event()

    def send() -> None:
        while not stop.is_set():
            try:
                reply = infer(gateway_url, DIGITS.inputs[:1])
                status, variant = reply.status, reply.headers.get("x-gateway-variant", "")
                detail = reply.body[:200].decode(errors="replace")
            except OSError as error:
                status, variant, detail = 0, "", repr(error)
            with result.lock:
                result.statuses[status] += 1
                result.variants[variant] += 1
                if status != 200:
                    result.failures.append(f"{status} {detail}")
            if pause_s:
                time.sleep(pause_s)

    workers = [threading.Thread(target=send, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    try:
        yield result
    finally:
        stop.set()
        for worker in workers:
            worker.join(30)
