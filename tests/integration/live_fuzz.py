"""The live fuzz run: hostile HTTP and gRPC requests against a real gateway process, in parallel,
with its memory and event-loop stalls watched; what it saw, for the test to judge.

Kept apart from the test so it can also be run by hand against any gateway
(``python -m tests.integration.live_fuzz HTTP_PORT GRPC_PORT PID``).
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc

from tests.support import fuzz_grpc, fuzz_http
from tests.support.watch import StallProbe, peak_rss_kib, reset_peak_rss, rss_kib

SEED = 20261202
HTTP_CASES = 3_000
GRPC_CASES = 2_000
GARBAGE_STREAMS = 60
TIMEOUT_S = 15.0
"""Longer than any backend's timeout in the test config: no answer by then is a hang."""
THREADS = 6
SLOWEST = 5


@dataclass
class FuzzReport:
    requests: int = 0
    seconds: float = 0.0
    start_rss_kib: int = 0
    peak_rss_kib: int = 0
    end_rss_kib: int = 0
    longest_probe_s: float = 0.0
    probes: int = 0
    probe_failures: list[str] = field(default_factory=list)
    unanswered: list[str] = field(default_factory=list)
    """Requests that got no answer (timeout, or a connection closed without one)."""
    internal: list[str] = field(default_factory=list)
    """HTTP 500 or gRPC INTERNAL/UNKNOWN: the gateway failed."""
    bad_shape: list[str] = field(default_factory=list)
    """4xx/5xx bodies not in the protocol's JSON error shape."""
    unexplained_5xx: list[str] = field(default_factory=list)
    """Other 5xx / UNAVAILABLE / DEADLINE_EXCEEDED that name no backend (nor the body budget)."""
    backend_5xx: Counter[str] = field(default_factory=Counter)
    """5xx a backend caused, by status and message start: reported, not failed."""
    backend_5xx_examples: dict[str, str] = field(default_factory=dict)
    """The first request that drew each of them."""
    statuses: Counter[str] = field(default_factory=Counter)
    slowest: list[tuple[float, str]] = field(default_factory=list)
    """The longest-answered requests, (seconds, what), longest first."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    """For the counters: the cases run on several threads."""

    def count(self, status: str) -> None:
        with self.lock:
            self.statuses[status] += 1

    def timed(self, seconds: float, what: str) -> None:
        with self.lock:
            self.slowest.append((seconds, what[:120]))
            self.slowest.sort(reverse=True)
            del self.slowest[SLOWEST:]

    def summary(self) -> str:
        growth = (self.peak_rss_kib - self.start_rss_kib) / 1024
        return (
            f"{self.requests} requests in {self.seconds:.1f} s; RSS {self.start_rss_kib // 1024}"
            f" MiB at start, peak +{growth:.1f} MiB, {self.end_rss_kib // 1024} MiB at the end; "
            f"longest probe {self.longest_probe_s * 1000:.0f} ms over {self.probes} probes; "
            f"statuses {dict(self.statuses.most_common())}; "
            f"5xx from backends {dict(self.backend_5xx.most_common(8))}; slowest answers "
            + ", ".join(f"{seconds * 1000:.0f} ms {what}" for seconds, what in self.slowest)
        )


def _names_its_cause(message: str) -> bool:
    return "backend '" in message or "server.max_buffered_request_bytes" in message


def _count_backend_5xx(report: FuzzReport, outcome: str, label: str) -> None:
    with report.lock:
        report.backend_5xx[outcome] += 1
        report.backend_5xx_examples.setdefault(outcome, label[:160])


def _http(port: int, case: fuzz_http.HttpCase, report: FuzzReport) -> None:
    label = f"{case.what} {case.method.decode(errors='replace')} {case.target[:80]!r}"
    started = time.perf_counter()
    try:
        reply = fuzz_http.send(port, case, TIMEOUT_S)
    except (TimeoutError, ConnectionError) as error:
        report.unanswered.append(f"{label}: {error!r}")
        return
    report.timed(time.perf_counter() - started, label)
    report.count(f"http {reply.status}")
    if reply.status < 400:
        return
    if reply.status == 500:
        report.internal.append(f"{label}: {reply.body[:300]!r}")
    problem = fuzz_http.error_shape_problem(case, reply)
    if problem is not None:
        report.bad_shape.append(f"{label}: {problem}: {reply.body[:200]!r}")
    elif reply.status > 500:
        message = fuzz_http.error_message(case, reply)
        if _names_its_cause(message):
            _count_backend_5xx(report, f"{reply.status} {message[:70]}", label)
        else:
            report.unexplained_5xx.append(f"{label}: {reply.status} {message[:200]}")


def _grpc(channel: grpc.Channel, case: fuzz_grpc.GrpcCase, report: FuzzReport) -> None:
    started = time.perf_counter()
    code, details = fuzz_grpc.call(channel, case, TIMEOUT_S)
    report.timed(time.perf_counter() - started, f"{case.what} ({case.method})")
    report.count(f"grpc {code.name}")
    label = f"{case.what} ({case.method})"
    if code in fuzz_grpc.REFUSED:
        report.internal.append(f"{label}: {code.name} {details[:300]}")
    elif code != grpc.StatusCode.OK and not details:
        report.bad_shape.append(f"{label}: {code.name} without a message")
    elif code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        if _names_its_cause(details):
            _count_backend_5xx(report, f"{code.name} {details[:70]}", label)
        elif code == grpc.StatusCode.DEADLINE_EXCEEDED and details == "Deadline Exceeded":
            report.unanswered.append(f"{label}: no answer within {TIMEOUT_S} s")
        else:
            report.unexplained_5xx.append(f"{label}: {code.name} {details[:200]}")


def _garbage(port: int, what: str, data: bytes, report: FuzzReport) -> None:
    report.count("grpc port garbage")
    if not fuzz_grpc.send_garbage(port, data, TIMEOUT_S):
        report.unanswered.append(f"gRPC port {what}: neither answered nor closed")


def run(http_port: int, grpc_port: int, pid: int) -> FuzzReport:
    """Send every case (HTTP and gRPC interleaved, ``THREADS`` at a time) while watching ``pid``."""
    report = FuzzReport(start_rss_kib=rss_kib(pid))
    http_cases = fuzz_http.http_cases(SEED, HTTP_CASES)
    grpc_cases = fuzz_grpc.grpc_cases(SEED, GRPC_CASES)
    garbage = fuzz_grpc.garbage_streams(SEED, GARBAGE_STREAMS)
    report.requests = len(http_cases) + len(grpc_cases) + len(garbage)
    reset_peak_rss(pid)
    started = time.monotonic()
    with (
        grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel,
        StallProbe(http_port) as probe,
        ThreadPoolExecutor(THREADS) as pool,
    ):
        futures = [pool.submit(_http, http_port, case, report) for case in http_cases]
        futures += [pool.submit(_grpc, channel, case, report) for case in grpc_cases]
        futures += [pool.submit(_garbage, grpc_port, *item, report) for item in garbage]
        for future in futures:
            future.result()  # a failure of the harness itself raises here
    report.seconds = time.monotonic() - started
    report.longest_probe_s, report.probes = probe.longest, probe.probes
    report.probe_failures = probe.failures
    report.peak_rss_kib = peak_rss_kib(pid)
    report.end_rss_kib = rss_kib(pid)
    return report


if __name__ == "__main__":
    seen = run(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
    print(seen.summary())
    for outcome, label in seen.backend_5xx_examples.items():
        print(f"{outcome}\n    <- {label}")
    for name in ("unanswered", "internal", "bad_shape", "unexplained_5xx", "probe_failures"):
        items = getattr(seen, name)
        print(f"{name}: {len(items)}")
        for item in items[:15]:
            print("   ", item)
