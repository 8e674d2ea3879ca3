"""Pooled percentiles of several wrk runs, and the tail wrk's script prints for them."""

import random
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from loadtests.benchmark.pooled import pooled_percentile, share_below
from loadtests.benchmark.wrk import TAIL_PERCENTILES, WrkResult, lua_script, parse_wrk, run_wrk
from tests.support.wrk_runs import run_of


def exact(samples: list[float], percentile: float) -> float:
    ordered = sorted(samples)
    return ordered[int(percentile / 100 * len(ordered)) - 1]


def test_the_pool_of_runs_has_the_percentile_of_all_their_requests():
    rng = random.Random(7)
    runs = [
        [rng.lognormvariate(-1.0, 0.3 + 0.1 * r) for _ in range(1000 + 300 * r)] for r in range(6)
    ]
    everything = [x for run in runs for x in run]
    pooled = pooled_percentile([run_of(run) for run in runs], 99.0)
    assert pooled == pytest.approx(exact(everything, 99.0), rel=0.02)
    # Not the median of the runs' p99s, nor their mean: the pool leans to the slower runs' tails.
    per_run = sorted(exact(run, 99.0) for run in runs)
    assert abs(pooled - per_run[len(per_run) // 2]) > 0.01


def test_runs_are_weighted_by_their_request_counts():
    fast, slow = [1.0] * 9900 + [2.0] * 100, [10.0] * 100
    # 10,100 requests, the slowest 100 at 10 ms and the next 100 at 2 ms: the p99 is 2 ms.
    assert pooled_percentile([run_of(fast), run_of(slow)], 99.0) == pytest.approx(2.0, abs=0.05)
    assert pooled_percentile([run_of(fast)] * 3, 99.0) == pytest.approx(
        pooled_percentile([run_of(fast)], 99.0)
    )


def test_share_below_interpolates_between_quantiles_and_is_conservative_below():
    tail = ((90.0, 1.0), (99.0, 2.0), (100.0, 4.0))
    assert share_below(tail, 1.5) == pytest.approx(0.945)
    assert share_below(tail, 5.0) == 1.0
    assert share_below(tail, 0.5) == pytest.approx(0.45)


def test_a_run_without_its_tail_is_refused_rather_than_guessed():
    bare = WrkResult(100.0, 1.0, 2.0, 3.0, 0)
    with pytest.raises(ValueError, match="tail quantiles"):
        pooled_percentile([run_of([1.0] * 100), bare], 99.0)
    with pytest.raises(ValueError, match="from 90"):
        pooled_percentile([run_of([1.0] * 100)], 50.0)


class _Answer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 1 << 16  # head and body in one write: no wait on a delayed ACK

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_wrk_prints_the_tail_and_count_the_pool_reads(tmp_path: Path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        body = tmp_path / "body.json"
        body.write_bytes(b"{}")
        script = lua_script(tmp_path / "s.lua", body, "/x", {}, 5.0)
        result = run_wrk(f"http://127.0.0.1:{server.server_port}/x", script, 2, 1)
    finally:
        server.shutdown()
        server.server_close()
    assert result.requests > 100
    assert [p for p, _ in result.tail] == pytest.approx(list(TAIL_PERCENTILES))
    values = [v for _, v in result.tail]
    assert values == sorted(values)
    assert values[0] > 0
    assert values[-1] >= dict(result.tail)[99.99]
    # wrk's own p99 and the printed 99th percentile are the same figure.
    assert dict(result.tail)[99.0] == pytest.approx(result.p99_ms, rel=0.02, abs=0.002)
    assert pooled_percentile([result], 99.0) == pytest.approx(result.p99_ms, rel=0.05, abs=0.005)


WRK_SUMMARY = """  Latency Distribution
     50%    2.40ms
     75%    2.99ms
     90%    3.71ms
     99%    5.00ms
Requests/sec:  10.0
"""


def test_parse_wrk_without_a_tail_still_reads_the_summary():
    out = WRK_SUMMARY
    result = parse_wrk(out)
    assert result.tail == ()
    assert result.requests == 0
