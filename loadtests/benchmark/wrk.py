"""Drive Debian's ``wrk``: closed-loop throughput, and an approximately open-loop fixed rate.

For the fixed rate every connection waits an exponentially distributed think time before each
request (mean ``connections / rate`` seconds), so arrivals are close to Poisson at ``rate`` and a
slow response does not silence the load the way a closed loop does (coordinated omission).
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


@dataclass(frozen=True)
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int


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
    return WrkResult(
        float(rate.group(1)), percentiles[50], percentiles[90], percentiles[99], errors
    )
