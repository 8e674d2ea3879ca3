"""Watching a gateway process while a test hammers it: its resident memory, and how long its
event loop stalls (measured from outside, as the latency of a cheap probe sent every few ms)."""

from __future__ import annotations

import http.client
import threading
import time
from pathlib import Path
from types import TracebackType


def rss_kib(pid: int) -> int:
    return _status_kib(pid, "VmRSS")


def peak_rss_kib(pid: int) -> int:
    """The largest resident size since :func:`reset_peak_rss` (or the start)."""
    return _status_kib(pid, "VmHWM")


def reset_peak_rss(pid: int) -> None:
    """Set the process's peak resident size to its current one (Linux ``clear_refs`` 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


class StallProbe:
    """``GET path`` on one keep-alive connection every ``interval_s``, timed; ``longest`` is
    the slowest answer seen, an upper bound on the longest stall of the server's event loop."""

    def __init__(self, port: int, path: str = "/v2/health/live", interval_s: float = 0.01):
        self._port = port
        self._path = path
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.longest = 0.0
        self.probes = 0
        self.failures: list[str] = []

    def __enter__(self) -> StallProbe:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self._port, timeout=30)
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                connection.request("GET", self._path)
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    self.failures.append(f"{self._path}: {response.status}")
            except (OSError, http.client.HTTPException) as error:
                self.failures.append(f"{self._path}: {error!r}")
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self._port, timeout=30)
            self.longest = max(self.longest, time.perf_counter() - started)
            self.probes += 1
            self._stop.wait(self._interval_s)
        connection.close()
