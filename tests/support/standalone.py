"""A gateway process without the real stack: its backend is a port nothing listens on (or one
the test serves), for tests of the process itself: start-up, shutdown, limits, metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from deploy.local.process import free_port

REPO = Path(__file__).resolve().parents[2]


def standalone_config(
    backend_url: str | None = None, models: int = 1, **server: Any
) -> dict[str, Any]:
    """``models`` models ``m0``, ``m1``... with one variant each on one OIP backend."""
    return {
        "server": {
            "http": {"host": "127.0.0.1", "port": free_port()},
            "grpc": None,
            "admin": None,
            **server,
        },
        "backends": {
            "oip": {"kind": "oip", "url": backend_url or f"http://127.0.0.1:{free_port()}"}
        },
        "models": {
            f"m{index}": {
                "variants": [{"name": "only", "backend": "oip", "version": 1, "weight": 1}]
            }
            for index in range(models)
        },
    }


class GatewayProcess:
    """``gateway serve`` as a child process in its own session, its output in a log file."""

    def __init__(self, run_dir: Path, config: dict[str, Any]) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.config_path = run_dir / "gateway.json"  # JSON is YAML, and loads fast
        self.config_path.write_text(json.dumps(config))
        self.log_path = run_dir / "gateway.log"
        self.port = int(config["server"]["http"]["port"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "gateway", "serve", "--config", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO,
                start_new_session=True,
            )

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 60.0) -> None:
        """Until ``text`` is in the log; fails if the process exits first."""
        assert self.popen is not None
        deadline = time.monotonic() + timeout
        while text not in self.log:
            assert self.popen.poll() is None, f"gateway exited:\n{self.log[-3000:]}"
            assert time.monotonic() < deadline, f"no {text!r} in the log:\n{self.log[-3000:]}"
            time.sleep(0.05)

    def wait_exit(self, timeout: float = 60.0) -> int:
        assert self.popen is not None
        return self.popen.wait(timeout)

    def workers(self) -> list[int]:
        """Pids of the supervisor's worker processes (not multiprocessing's resource tracker)."""
        assert self.popen is not None
        leader = self.popen.pid
        children = Path(f"/proc/{leader}/task/{leader}/children").read_text().split()
        return [int(pid) for pid in children if b"spawn_main" in _cmdline(int(pid))]

    def group_alive(self) -> bool:
        assert self.popen is not None
        try:
            os.killpg(self.popen.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def stop(self) -> None:
        if self.popen is None:
            return
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        deadline = time.monotonic() + 10
        while self.group_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.group_alive():
            os.killpg(self.popen.pid, signal.SIGKILL)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
