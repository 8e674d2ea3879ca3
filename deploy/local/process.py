"""Start, wait on and stop the local stack's processes (no Docker).

Each process runs in its own session so that stopping it takes its children too (TorchServe's
frontend starts Python workers), and its pid is written to the run directory so that ``make down``
stops exactly what ``make up`` started.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class StartError(RuntimeError):
    """A process exited or did not become ready in time; the message ends with its log's tail."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(200 <= response.status < 300)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "<no log>"


@dataclass
class ManagedProcess:
    """One child process with a readiness check, a log file and a pid file."""

    name: str
    argv: Sequence[str]
    run_dir: Path
    ready: Callable[[], bool]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    popen: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.run_dir / f"{self.name}.log"

    @property
    def pid_path(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env}
        with self.log_path.open("wb") as log:
            self.popen = subprocess.Popen(
                list(self.argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.cwd,
                start_new_session=True,
            )
        self.pid_path.write_text(str(self.popen.pid))

    def wait_ready(self, timeout: float) -> float:
        """Poll the readiness check; return seconds waited, raise StartError on exit or timeout."""
        assert self.popen is not None, "start() first"
        started = time.monotonic()
        while True:
            if self.ready():
                return time.monotonic() - started
            code = self.popen.poll()
            if code is not None:
                raise StartError(
                    f"{self.name} exited with {code} before it was ready; "
                    f"log {self.log_path}:\n{log_tail(self.log_path)}"
                )
            if time.monotonic() - started > timeout:
                raise StartError(
                    f"{self.name} not ready after {timeout:.0f}s; "
                    f"log {self.log_path}:\n{log_tail(self.log_path)}"
                )
            time.sleep(0.05)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the whole group; SIGKILL whatever is left of it after ``grace``.

        Waits for the group, not just the leader: TorchServe's launcher exits at once on SIGTERM
        while its Java frontend still shuts down.
        """
        if self.popen is not None:
            pid = self.popen.pid
            _signal_group(pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                self.popen.poll()  # reap the leader, or its zombie keeps the group alive
                if not _group_alive(pid):
                    break
                time.sleep(0.05)
            _signal_group(pid, signal.SIGKILL)
            self.popen.wait()
        self.pid_path.unlink(missing_ok=True)


def _signal_group(pid: int, sig: signal.Signals) -> bool:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return False
    return True


def _group_alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_group(pid: int, grace: float = 10.0) -> bool:
    """SIGTERM the group led by ``pid`` (not our child), SIGKILL it after ``grace``.

    Returns False if the group was already gone.
    """
    if not _signal_group(pid, signal.SIGTERM):
        return False
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _group_alive(pid):
            return True
        time.sleep(0.05)
    _signal_group(pid, signal.SIGKILL)
    return True
