"""``/metrics`` with thousands of models that all carried traffic: how long a scrape takes, and
what scraping does to the p99 of other requests on the same worker.

Each model (``model-0`` ... ``model-N``, split 90/10 between variants ``a`` and ``b``) first gets
one request that the split routes ("every model"), then one request to each of its variants,
pinned with ``x-gateway-variant`` ("every variant": twice the series, the worst case). A scrape
is timed as Prometheus sees it: from the request to the last byte of the body, over loopback.
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from deploy.local.process import free_port
from loadtests.benchmark import footprint, peers
from loadtests.benchmark import plan as p
from loadtests.benchmark.cases import Load, Starter, Summary, interleaved, small_body
from loadtests.benchmark.steps import Steps
from loadtests.benchmark.wrk import WrkResult

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class ScrapeTimes:
    """Wall milliseconds of the first scrape (it indexes every new series) and of the next ones,
    and the CPU the workers spent per scrape (a figure that the machine's other load does not
    inflate much; it includes their background readiness probes)."""

    first_ms: float
    median_ms: float
    max_ms: float
    cpu_ms: float
    megabytes: float
    lines: int
    failed: int = 0  # requests of the traffic that were not answered 200


@dataclass
class Scraper:
    """Scrapes back to back in a thread until stopped; keeps each scrape's duration."""

    port: int
    seconds: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self._stop.is_set():
            self.seconds.append(timed_scrape(self.port))

    def __enter__(self) -> Scraper:
        self._thread = threading.Thread(target=self.run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def scrape(port: int) -> tuple[float, bytes]:
    """Seconds for one whole scrape, and its body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    started = time.perf_counter()
    connection.request("GET", "/metrics")
    response = connection.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - started
    connection.close()
    if response.status != 200:
        raise RuntimeError(f"/metrics answered {response.status}")
    return elapsed, body


END = b"\r\n0\r\n\r\n"  # the last chunk of a chunked body


def timed_scrape(port: int) -> float:
    """Seconds for one whole scrape, read as fast as a socket gives it (http.client's chunked
    reading would be the slower party and time itself)."""
    buffer = bytearray(1 << 20)
    view = memoryview(buffer)
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        started = time.perf_counter()
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        tail = b""
        while True:
            size = sock.recv_into(view)
            if size == 0:
                raise RuntimeError("/metrics ended without its last chunk")
            tail = (tail + bytes(view[max(0, size - len(END)) : size]))[-len(END) :]
            if tail == END:
                return time.perf_counter() - started


def traffic(port: int, models: int, body: bytes, variants: tuple[str | None, ...]) -> int:
    """One request per model and variant (``None``: as the split routes it), on four keep-alive
    connections; returns how many were not answered 200 (they leave their series too)."""
    targets = [(f"model-{i}", variant) for i in range(models) for variant in variants]

    def send(part: list[tuple[str, str | None]]) -> int:
        failed = 0
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for model, variant in part:
            headers = {**JSON_HEADERS, **({"x-gateway-variant": variant} if variant else {})}
            connection.request("POST", f"/v2/models/{model}/infer", body, headers)
            response = connection.getresponse()
            response.read()
            failed += response.status != 200
        connection.close()
        return failed

    with ThreadPoolExecutor(4) as pool:
        return sum(pool.map(send, [targets[i::4] for i in range(4)]))


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def scrape_times(port: int, workers: list[int], failed: int) -> ScrapeTimes:
    first = timed_scrape(port)
    later, cpu = [], []
    for _ in range(p.SCRAPES):
        before = cpu_seconds(workers)
        later.append(timed_scrape(port))
        cpu.append(cpu_seconds(workers) - before)
    _, body = scrape(port)
    return ScrapeTimes(
        first * 1000,
        statistics.median(later) * 1000,
        max(later) * 1000,
        statistics.median(cpu) * 1000,
        len(body) / 1e6,
        body.count(b"\n"),
        failed,
    )


class ScrapedLoad:
    """A load measured while another client scrapes the same worker back to back."""

    def __init__(self, port: int, measure: Callable[[], WrkResult]) -> None:
        self._port = port
        self._measure = measure
        self.scrapes: list[float] = []

    def __call__(self) -> Summary:
        with Scraper(self._port) as scraper:
            time.sleep(0.2)
            result = self._measure()
        self.scrapes.extend(scraper.seconds)
        return Summary(result.requests_per_s, result.p50_ms, result.p99_ms, result.errors)


def measure_scrape(
    run: Path,
    ups: peers.Upstreams,
    scripts: Path,
    args: argparse.Namespace,
    start: Starter,
    steps: Steps,
) -> dict[str, object]:
    """Scrape times at 1,000 and 10,000 models (1 and 2 workers), and the p99 of a 200 req/s
    stream on a 1-worker gateway with 10,000 models, without and with back-to-back scrapes."""
    body_file = small_body(run)
    body = body_file.read_bytes()
    times: dict[str, ScrapeTimes] = {}
    p99: dict[str, Summary] = {}
    during: list[float] = []
    for workers, models in p.SCRAPE_GATEWAYS:
        label = f"{models:,} models, {workers} worker{'s' if workers > 1 else ''}"
        config = peers.gateway_config(ups, free_port(), workers, extra_models=models)
        process, port = peers.gateway(run / "gw-scrape", config, f"scrape-{workers}-{models}")
        start(process)
        try:
            assert process.popen is not None
            pids = footprint.worker_pids(process.popen.pid)
            for which, variants in p.SCRAPE_TRAFFIC:
                failed = traffic(port, models, body, variants)
                times[f"{label}, {which}"] = found = scrape_times(port, pids, failed)
                steps.did(
                    "scrape",
                    f"{label}, {which}: {found.median_ms:.0f} ms ({found.cpu_ms:.0f} ms CPU)",
                    p.SCRAPE_TRAFFIC_S,
                    **asdict(found),
                )
            if (workers, models) == (1, 10_000):
                p99, during = _stream_p99(port, body_file, scripts, args, steps)
        finally:
            process.stop()
    return {"scrape": times, "stream": p99, "scrape_ms_under_load": _ms(during)}


def _stream_p99(
    port: int, body: Path, scripts: Path, args: argparse.Namespace, steps: Steps
) -> tuple[dict[str, Summary], list[float]]:
    load = Load("/v2/models/m/infer", body, JSON_HEADERS, 20, args.seconds, 200)
    plain = load.measure(f"http://127.0.0.1:{port}", scripts)
    scraped = ScrapedLoad(port, plain)
    quiet, busy = p.SCRAPE_STREAM
    results = interleaved(
        {quiet: plain, busy: scraped}, args.rounds, steps.measured("scrape stream")
    )
    return results, scraped.scrapes


def _ms(seconds: list[float]) -> dict[str, float]:
    if not seconds:
        return {}
    return {
        "count": float(len(seconds)),
        "median_ms": statistics.median(seconds) * 1000,
        "max_ms": max(seconds) * 1000,
    }
