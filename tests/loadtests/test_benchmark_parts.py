"""The benchmark's parsing, verdicts and progress (the benchmark itself is `make bench`)."""

import io
import json
import os
import statistics
import time

import pytest

from gateway.config import parse_config
from loadtests.benchmark import runtimes, shadow, tracing
from loadtests.benchmark.cases import Summary, interleaved
from loadtests.benchmark.plan import DEFAULT_CASES, TRACING_TARGETS, plan
from loadtests.benchmark.report import Report
from loadtests.benchmark.steps import Steps
from loadtests.benchmark.wrk import parse_wrk
from loadtests.progress import Progress
from tests.support.wrk_runs import run_of

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


def test_each_measurement_is_shown_and_kept_as_it_is_taken(tmp_path, monkeypatch):
    monkeypatch.setattr("loadtests.benchmark.cases.time.sleep", lambda _: None)
    out, raw = io.StringIO(), tmp_path / "results.jsonl"
    steps = Steps(Progress("bench", 6 * 3.5, steps=6, out=out, records=raw), 3.0, 3)
    calls = iter(range(100))

    def measure() -> Summary:
        count = next(calls)
        if count == 4:
            raise KeyboardInterrupt  # the run is stopped during its fifth measurement
        return summary(1000.0 + count)

    with pytest.raises(KeyboardInterrupt):
        interleaved({"envoy-2": measure, "gateway-2": measure}, 3, steps.measured("closed"))
    kept = [json.loads(line) for line in raw.read_text().splitlines()]
    assert [(r["target"], r["round"], r["requests_per_s"]) for r in kept] == [
        ("envoy-2", 1, 1000.0), ("gateway-2", 1, 1001.0),
        ("envoy-2", 2, 1002.0), ("gateway-2", 2, 1003.0),
    ]  # fmt: skip
    lines = out.getvalue().splitlines()
    assert lines[0].startswith(
        "bench [1/6  17%] closed: envoy-2, round 1/3: 1,000 req/s, p50 1.000"
    )
    assert lines[3].startswith("bench [4/6  67%] closed: gateway-2, round 2/3: 1,003 req/s")


def test_the_plan_counts_every_measurement_of_a_run():
    steps, seconds = plan(DEFAULT_CASES, rounds=3, seconds=8.0)
    # 7 closed + 2 x 5 fixed + 5 big + 3 routing + 2 x 4 torchserve + 6 runtimes + 2 scrape
    # stream + 2 x 3 shadow + 4 tracing measurements per round, plus the peers' start, 2 RSS
    # readings, 6 start-ups, 4 in-process routings, TorchServe's start, the runtimes' start,
    # 4 gateways x 2 traffic passes of the scrape case, the shadow counts read back, and 3
    # in-process tracing measurements
    assert steps == 1 + 3 * (7 + 10 + 5 + 3 + 8 + 6 + 2 + 6 + 4) + 2 + 6 + 4 + 1 + 1 + 8 + 1 + 3
    assert 15 * 60 < seconds < 30 * 60  # "about twenty minutes"
    assert plan(["closed"], rounds=1, seconds=3.0) == (1 + 7, 10.0 + 7 * 3.5)
    # 4 gateways closed loop + 2 rates x (the upstream + 4 gateways), plus their start
    assert plan(["baseline"], rounds=2, seconds=3.0)[0] == 1 + 2 * (4 + 2 * 5) + 1


def test_the_runtimes_case_pins_one_variant_per_runtime_and_protocol():
    config = parse_config(runtimes.gateway_config(runtimes.free_ports()))
    variants = {v.name: config.backends[v.backend] for v in config.models["digits"].variants}
    pinned = {(variants[name].runtime, variants[name].protocol)
              for name in runtimes.THROUGH_GATEWAY.values()}  # fmt: skip
    assert pinned == {("mlserver", "rest"), ("mlserver", "grpc"), ("torchserve", "rest"),
                      ("tfserving", "grpc")}  # fmt: skip
    report = Report(runtimes={"gateway -> mlserver grpc, 100 req/s": summary(99.5, 1.5, 4.25)})
    assert "Real digits through each runtime (version 1)" in report.render()
    assert "gateway -> mlserver grpc, 100 req/s" in runtimes.render(report.runtimes)


def test_rotated_rounds_change_who_goes_first(monkeypatch):
    monkeypatch.setattr("loadtests.benchmark.cases.time.sleep", lambda _: None)
    order: list[str] = []

    def measure(name: str):
        def run() -> Summary:
            order.append(name)
            return summary(1.0)

        return run

    interleaved({n: measure(n) for n in "abc"}, 4, rotate=True)
    assert "".join(order) == "abcbcacababc"


def test_cpu_time_is_counted_to_the_nanosecond_unless_a_thread_ended():
    pid = os.getpid()
    before = tracing.cpu_ns(pid), tracing.cpu_seconds(pid)
    started = time.process_time()
    while time.process_time() - started < 0.05:
        pass
    used = tracing.cpu_used_s(pid, before)
    assert 0.05 <= used < 1.0
    assert used != round(used, 2)  # not a whole number of 10 ms ticks
    ended = {**before[0], 2**31 - 1: 10**12}  # a thread that is gone now
    # Ticks: no thread's 1,000 s is subtracted.
    assert 0.0 <= tracing.cpu_used_s(pid, (ended, before[1])) < 1.0


def test_tracing_verdicts_and_table():
    off, twin, unsampled, sampled = TRACING_TARGETS
    closed = {mode: summary(10_000.0, 3.0, 5.0) for mode in TRACING_TARGETS}
    cpu = {off: [100.0, 104.0, 98.0], twin: [101.0, 100.0, 99.0],
           unsampled: [108.0, 111.0, 106.0], sampled: [150.0, 160.0, 140.0]}  # fmt: skip
    rounds = tracing.added_us_rounds(cpu)
    assert rounds == {twin: [1.0, -4.0, 1.0], unsampled: [8.0, 7.0, 8.0],
                      sampled: [50.0, 56.0, 42.0]}  # fmt: skip
    added = {mode: statistics.median(values) for mode, values in rounds.items()}
    hooks = {off: 0.5, unsampled: 2.0, sampled: 30.0}
    report = Report(
        tracing={
            "fixed_rate": closed,
            "cpu_us_rounds": cpu,
            "added_us": added,
            "added_us_rounds": rounds,
            "in_process_us": hooks,
        }
    )
    rows = {target: (measured, met) for target, measured, met in report.targets()}
    assert rows["tracing on, unsampled: at most +10 us per request"] == (
        "+8.0 us CPU per request end to end (+7.0 to +8.0), median of 3 rounds' differences "
        "from tracing off; A/A, two tracing-off gateways: +1.0 (-4.0 to +1.0); "
        "+1.5 us in process", True,
    )  # fmt: skip
    assert rows["tracing on, sampled + OTLP export: at most +60 us per request"][1]
    report.tracing["added_us"] = {**added, unsampled: 10.5}
    met = {target: met for target, _, met in report.targets()}
    assert not met["tracing on, unsampled: at most +10 us per request"]
    # Two identical gateways 12 us apart: a +8 us difference is not shown.
    report.tracing["added_us"] = added
    report.tracing["added_us_rounds"] = {**rounds, twin: [12.0, -4.0, 13.0]}
    rows = {target: (measured, met) for target, measured, met in report.targets()}
    measured, met_now = rows["tracing on, unsampled: at most +10 us per request"]
    assert not met_now
    assert "not resolved" in measured
    assert rows["tracing on, sampled + OTLP export: at most +60 us per request"][1]
    rendered = report.render()
    assert "Tracing, 1 worker, 400 req/s over 20 connections" in rendered
    assert "-4.0" in rendered  # every round's difference is shown


def test_scrape_verdicts_and_table():
    from loadtests.benchmark.scrape import ScrapeTimes

    report = Report(
        scrape={
            "scrape": {
                "1,000 models, 1 worker, every variant": ScrapeTimes(90, 60, 70, 50, 11.6, 98_000),
                "10,000 models, 1 worker, every variant": ScrapeTimes(
                    900, 700, 800, 600, 117.4, 980_000
                ),
                "10,000 models, 2 workers, every variant": ScrapeTimes(
                    3000, 1200, 1300, 900, 117.4, 980_000, 2
                ),
            },
            "stream": {"no scrapes": summary(200, 0.3, 0.9), "scrapes": summary(200, 0.4, 7.0)},
        }
    )
    verdicts = {target: met for target, _, met in report.targets()}
    assert verdicts["/metrics, 10,000 models, 1 worker, every variant with traffic: < 1 s"]
    assert not verdicts["/metrics, 10,000 models, 2 workers, every variant with traffic: < 1 s"]
    assert "1,000" not in " ".join(verdicts)
    assert not verdicts["p99 of 200 req/s with back-to-back scrapes: at most +5 ms"]
    text = report.render()
    assert "10,000 models, 2 workers, every variant" in text
    assert "980,000" in text


def test_shadow_verdict_is_the_median_of_per_round_ratios_beside_the_a_a_floor():
    plain, aa, shadowed = (
        f"gateway-1, {t}" for t in ("no shadow", "no shadow (A/A)", "shadow 100%")
    )
    rounds = {
        # 200 req/s: one wild round (+100%) does not decide; the median is +4%.
        f"{plain}, 200 req/s": [1.0, 2.0, 1.0],
        f"{aa}, 200 req/s": [1.1, 1.8, 1.0],
        f"{shadowed}, 200 req/s": [1.04, 4.0, 1.0],
        # 500 req/s: the medians of the rounds (1.0 vs 1.0) would say +0%, the ratios +20%.
        f"{plain}, 500 req/s": [1.0, 2.0, 0.5],
        f"{aa}, 500 req/s": [1.0, 2.0, 0.5],
        f"{shadowed}, 500 req/s": [1.2, 1.0, 1.0],
    }
    report = Report(
        shadow={
            "fixed_rate": {
                label: summary(int(label.rsplit(", ", 1)[1].split()[0]), 1.0, sorted(v)[1])
                for label, v in rounds.items()
            },
            "p99_rounds": rounds,
            "results": {"agree": 12_000.0, "dropped": 3.0},
            "shadow_upstream": "the shadow variant on its own nginx",
        }
    )
    rows = {target: (measured, met) for target, measured, met in report.targets()}
    measured, met = rows["200 req/s: shadowing 100% adds <= 5% to the primary's p99"]
    assert met is True
    assert "median of 3 rounds' ratios +4.0% (rounds +0% to +100%)" in measured
    assert "A/A floor +0.0% (rounds -10% to +10%)" in measured
    measured, met = rows["500 req/s: shadowing 100% adds <= 5% to the primary's p99"]
    assert met is False
    assert "+20.0%" in measured
    # +0% added, but two identical gateways differed by 10%: that run cannot resolve 5%.
    rounds[f"{aa}, 500 req/s"] = [1.1, 2.2, 0.55]
    rounds[f"{shadowed}, 500 req/s"] = [1.0, 2.0, 0.5]
    rows = {target: (measured, met) for target, measured, met in report.targets()}
    measured, met = rows["500 req/s: shadowing 100% adds <= 5% to the primary's p99"]
    assert met is False
    assert "the A/A floor is beyond 5%: unresolved" in measured
    text = report.render()
    assert "shadow comparisons: agree 12,000, dropped 3" in text
    assert "the shadow variant on its own nginx" in text
    assert "A/A (no change) +10% -10% +0%" in text


def test_rotated_rounds_give_each_target_each_place(monkeypatch):
    monkeypatch.setattr("loadtests.benchmark.cases.time.sleep", lambda _: None)
    order: list[str] = []

    def target(name: str):
        def measure() -> Summary:
            order.append(name)
            return summary(1.0)

        return measure

    interleaved({name: target(name) for name in "abc"}, 4, rotate=True)
    assert "".join(order) == "abc" + "bca" + "cab" + "abc"


def test_shadow_verdict_is_the_pooled_p99_beside_the_pooled_a_a_floor():
    plain, aa, shadowed = (
        f"gateway-1, {t}" for t in ("no shadow", "no shadow (A/A)", "shadow 100%")
    )
    # Over both rounds' 2,000 requests the p99 is the 20th slowest: 1.0 ms plain, 1.2 shadowed.
    plain_runs = [run_of([0.3] * 990 + [1.0] * 10), run_of([0.3] * 990 + [2.0] * 10)]
    aa_runs = [run_of([0.3] * 990 + [1.0] * 10), run_of([0.3] * 990 + [2.0] * 10)]
    shadow_runs = [run_of([0.3] * 980 + [1.2] * 20), run_of([0.3] * 990 + [2.0] * 10)]
    pooled = shadow.pooled_p99(plain_runs, aa_runs, shadow_runs)
    assert pooled["aa"] == pytest.approx(0.0, abs=0.005)
    assert pooled["added"] == pytest.approx(0.2, abs=0.01)
    assert pooled["added_low"] <= pooled["added"] <= pooled["added_high"]
    rounds = {
        f"{plain}, 200 req/s": [r.p99_ms for r in plain_runs],
        f"{aa}, 200 req/s": [r.p99_ms for r in aa_runs],
        f"{shadowed}, 200 req/s": [r.p99_ms for r in shadow_runs],
    }
    report = Report(
        shadow={
            "fixed_rate": {label: summary(200, 0.3, max(v)) for label, v in rounds.items()},
            "p99_rounds": rounds,
            "pooled_p99": {200: pooled},
            "results": {"agree": 4_000.0},
        }
    )
    rows = {target: (measured, met) for target, measured, met in report.targets()}
    measured, met = rows["200 req/s: shadowing 100% adds <= 5% to the primary's p99"]
    assert met is False
    assert f"{pooled['added']:+.1%}" in measured
    assert "A/A floor +0.0%" in measured
    # The same run with the shadowing gateway's rounds as the plain one's: met.
    report.shadow["pooled_p99"] = {200: shadow.pooled_p99(plain_runs, aa_runs, aa_runs)}
    rows = {target: (measured, met) for target, measured, met in report.targets()}
    assert rows["200 req/s: shadowing 100% adds <= 5% to the primary's p99"][1] is True
