"""Drive Debian's ``wrk``: closed-loop throughput, and an approximately open-loop fixed rate.

For the fixed rate every connection waits an exponentially distributed think time before each
request (mean ``connections / rate`` seconds), so arrivals are close to Poisson at ``rate`` and a
slow response does not silence the load the way a closed loop does (coordinated omission).

Every run also prints its latency quantiles from the 90th percentile up (``TAIL_PERCENTILES``)
and its request count, so that runs can be pooled: the p99 of several short runs together
(:mod:`loadtests.benchmark.pooled`) rests on all their requests, where the p99 of one 5 s run at
200 req/s is its tenth slowest request.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}
_PERCENTILE = re.compile(r"^\s+(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_ERRORS = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_TAIL = re.compile(r"^tail ([\d.]+) (\d+)$", re.MULTILINE)
_COUNT = re.compile(r"^requests (\d+)$", re.MULTILINE)

TAIL_PERCENTILES = (
    *(90 + i / 10 for i in range(90)),
    *(99 + i / 100 for i in range(100)),
    100.0,
)
"""Where the tail is read: every 0.1% from 90% to 99%, every 0.01% above (wrk's histogram has
microsecond buckets, so nothing is lost to its resolution at these latencies)."""


@dataclass(frozen=True)
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int
    requests: int = 0
    tail: tuple[tuple[float, float], ...] = ()
    """(percentile, ms) from the 90th up, when the run printed them."""


def lua_script(
    path: Path, body_file: Path, url_path: str, headers: dict[str, str], mean_delay_ms: float | None
) -> Path:
    lines = [
        'wrk.method = "POST"',
        f'wrk.path = "{url_path}"',
        *(f'wrk.headers["{name}"] = "{value}"' for name, value in headers.items()),
        f'local f = io.open("{body_file}", "rb")',
        'wrk.body = f:read("*all")',
        "f:close()",
        "function done(summary, latency, requests)",
        f"  for _, p in ipairs({{{', '.join(f'{q:.2f}' for q in TAIL_PERCENTILES)}}}) do",
        # wrk 4.1's percentile(100) is 0: the slowest request is its max.
        "    local ms = p >= 100 and latency.max or latency:percentile(p)",
        '    io.write(string.format("tail %.2f %d\\n", p, ms))',
        "  end",
        '  io.write(string.format("requests %d\\n", summary.requests))',
        "end",
    ]
    if mean_delay_ms is not None:
        lines += [
            "math.randomseed(os.time())",
            "function delay()",
            f"  return -{mean_delay_ms} * math.log(1 - math.random())",
            "end",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_wrk(
    url: str, script: Path, connections: int, seconds: float, threads: int = 1
) -> WrkResult:
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
            "--latency", "-s", str(script), url]  # fmt: skip
    out = subprocess.run(
        argv, capture_output=True, text=True, timeout=seconds + 60, check=True
    ).stdout
    return parse_wrk(out)


def parse_wrk(out: str) -> WrkResult:
    percentiles = {int(p): float(v) * _UNITS[unit] for p, v, unit in _PERCENTILE.findall(out)}
    rate = _RATE.search(out)
    if rate is None or 50 not in percentiles:
        raise RuntimeError(f"could not read wrk's output:\n{out}")
    errors = sum(int(n) for n in _ERRORS.findall(out))
    socket_errors = _SOCKET.search(out)
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    count = _COUNT.search(out)
    tail = tuple((float(p), int(us) / 1000.0) for p, us in _TAIL.findall(out))
    return WrkResult(
        float(rate.group(1)),
        percentiles[50],
        percentiles[90],
        percentiles[99],
        errors,
        int(count.group(1)) if count else 0,
        tail,
    )
