"""The benchmark's parsing and verdicts (the benchmark itself is `make bench`, not a test)."""

from loadtests.benchmark.cases import Summary
from loadtests.benchmark.report import Report
from loadtests.benchmark.wrk import parse_wrk

WRK_OUTPUT = """Running 8s test @ http://127.0.0.1:18090/v2/models/m/infer
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.61ms    1.10ms  22.33ms   80.12%
    Req/Sec    12.88k     1.35k   14.24k    77.50%
  Latency Distribution
     50%    2.40ms
     75%    2.99ms
     90%    3.71ms
     99%  812.00us
  102549 requests in 8.01s, 30.22MB read
  Non-2xx or 3xx responses: 3
Requests/sec:  12811.48
Transfer/sec:      3.77MB
"""


def test_parse_wrk_reads_rate_percentiles_and_errors():
    result = parse_wrk(WRK_OUTPUT)
    assert result.requests_per_s == 12811.48
    assert result.p50_ms == 2.4
    assert result.p90_ms == 3.71
    assert result.p99_ms == 0.812
    assert result.errors == 3


def summary(rate: float, p50: float = 1.0, p99: float = 2.0) -> Summary:
    return Summary(rate, p50, p99, 0)


def test_targets_are_judged_from_ratios_measured_in_one_run():
    report = Report(
        closed={
            "envoy-2": summary(20_000),
            "gateway-2": summary(9_000),
            "gateway-1": summary(6_000),
            "naive": summary(300),
        },
        fixed_rate={
            200: {
                "direct": summary(200, 0.1, 1.0),
                "envoy-2": summary(200, 0.5, 2.0),
                "gateway-2": summary(200, 0.6, 4.5),
            }
        },
        big={"envoy-2": summary(800), "gateway-2": summary(640)},
    )
    verdicts = {target: met for target, _, met in report.targets()}
    assert verdicts["throughput, 2 workers vs Envoy 2 threads >= 40%"]
    assert verdicts["throughput vs naive FastAPI+httpx (1 worker each) >= 15x"]
    assert verdicts["200 req/s: gateway-2 added p50 <= 1.5x Envoy's"]  # 0.5 vs 0.4 ms
    assert not verdicts["200 req/s: gateway-2 added p99 <= 2.0x Envoy's"]  # 3.5 vs 1.0 ms
    assert verdicts["1 MiB binary tensors vs Envoy >= 75%"]
    assert "RSS" not in " ".join(verdicts)
