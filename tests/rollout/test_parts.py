"""The controller's pure parts: statistics, the text format, counter windows, plans, weights."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
import yaml

from gateway.metrics import LATENCY_BUCKETS
from gateway.rollout import decide, weights
from gateway.rollout.plan import PlanError, load_plan, parse_plan
from gateway.rollout.scrape import Point, increase
from gateway.rollout.stats import Histogram, rate_difference, wilson, z_score
from gateway.rollout.textformat import FormatError, parse_line, select
from tests.rollout.world import starting_variants

BOUNDS = (*LATENCY_BUCKETS, math.inf)


def histogram_of(values: list[float]) -> Histogram:
    counts = [0] * len(BOUNDS)
    for value in values:
        counts[next(i for i, bound in enumerate(BOUNDS) if value <= bound)] += 1
    return Histogram(BOUNDS, tuple(counts))


def test_wilson_and_newcombe_match_published_values():
    # Newcombe (1998), example (a): 56/70 against 48/80, 95% two-sided, his method 10.
    z = z_score(0.975)
    single = wilson(56, 70, z)  # Wilson's interval for 0.8 at n = 70
    assert (round(single.low, 4), round(single.high, 4)) == (0.6918, 0.8770)
    difference = rate_difference(56, 70, 48, 80, z)
    assert (round(difference.low, 4), round(difference.high, 4)) == (0.0524, 0.3339)
    # No events at all still gives an upper bound, which shrinks with the trials.
    assert wilson(0, 100, z_score(0.95)).high == pytest.approx(0.0263, abs=1e-4)
    assert wilson(0, 1000, z_score(0.95)).high < 0.003


def test_quantile_bounds_cover_the_true_p99_at_their_confidence():
    rng = random.Random(3)
    misses, trials = 0, 400
    true_p99 = math.exp(math.log(0.004) + 0.4 * 2.326)  # lognormal's p99
    for _ in range(trials):
        sample = [rng.lognormvariate(math.log(0.004), 0.4) for _ in range(1500)]
        bounds = histogram_of(sample).quantile_bounds(0.99, z_score(0.95))
        misses += not (bounds.low <= true_p99 <= bounds.high)
    assert misses / trials < 0.10  # each side 5%: a miss rate under 10% overall
    few = histogram_of([0.004] * 50).quantile_bounds(0.99, z_score(0.95))
    assert few.high == math.inf  # 50 samples cannot bound a p99 from above
    assert few.low == 0.0025  # ...but they do from below: the bucket's lower edge


def test_histograms_from_cumulative_buckets_never_go_negative():
    # increase() extrapolates each bucket separately: cumulative counts can dip.
    histogram = Histogram.from_cumulative({0.1: 10.4, 0.5: 9.8, 1.0: 20.2, math.inf: 20.0})
    assert histogram.counts == (10, 0, 10, 0)
    assert histogram.quantile(0.5) == 0.1
    assert Histogram.from_cumulative({0.1: 3}).bounds == (0.1, math.inf)


def test_text_format_lines_with_escapes_and_specials():
    sample = parse_line(r'm_total{model="a\"b",path="c:\\d",doc="x\ny"} 3.5 1700000000')
    assert sample.name == "m_total"
    assert dict(sample.labels) == {"model": 'a"b', "path": "c:\\d", "doc": "x\ny"}
    assert sample.value == 3.5
    assert parse_line('h_bucket{le="+Inf"} +Inf').value == math.inf
    assert parse_line("up 1").labels == ()
    for bad in ('m{model="a} 1', "m{model=a} 1", 'm{model="a"}', "m{} one"):
        with pytest.raises(FormatError):
            parse_line(bad)
    lines = [
        "# HELP gateway_requests_total Requests",
        'gateway_requests_total{model="digits",variant="a",code="200"} 4',
        'gateway_requests_total{model="digits2",variant="a",code="200"} 9',
        'gateway_requests_created{model="digits",variant="a",code="200"} 1e9',
    ]
    chosen = list(select(lines, ("gateway_requests_total",), 'model="digits"'))
    assert [(s.label("variant"), s.value) for s in chosen] == [("a", 4.0)]


def test_increase_counts_resets_and_new_series_like_prometheus():
    key = ("gateway_requests_total", (("variant", "a"),))
    other = ("gateway_requests_total", (("variant", "b"),))
    points = [
        Point(0, {key: 100}),
        Point(10, {key: 130}),
        Point(20, {key: 5, other: 7}),  # a replica restarted; b's first requests
        Point(30, {key: 25, other: 9}),
    ]
    assert increase(points, 0, 30) == {key: 30 + 5 + 20, other: 9}
    assert increase(points, 12, 30) == {key: 5 + 20, other: 9}  # from the point before 12
    assert increase(points, 20, 30) == {key: 20, other: 2}
    assert increase(points, 40, 50) == {}
    assert increase(points[:1], 0, 30) == {}


def test_plans_refuse_mistakes_by_key_path(tmp_path):
    with pytest.raises(PlanError) as refused:
        parse_plan({
            "interval": "soon",
            "gates": {"max_latency_ratio": 0.5, "error_codes": ["5xx", "oops"]},
            "steps": [{"kind": "canary", "weight": 5}, {"kind": "canary", "weight": 150},
                      {"kind": "shadwo"}],
        })  # fmt: skip
    wheres = [where for where, _ in refused.value.problems]
    assert wheres == [
        "interval", "gates.error_codes[1]", "gates.max_latency_ratio", "steps[1].weight", "steps[2]"
    ]  # fmt: skip
    assert "'soon' is not a duration" in str(refused.value)
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text("steps:\n  - {kind: canary, weight: 10, duration: 90}\n  - kind: bake\n")
    plan = load_plan(plan_file)
    assert [step.kind for step in plan.steps] == ["canary", "bake"]
    assert plan.steps[0].duration == 90
    plan_file.write_text("steps: [")
    with pytest.raises(PlanError, match="cannot be parsed"):
        load_plan(plan_file)
    default = parse_plan(None)
    assert [s.kind for s in default.steps] == ["shadow", "canary", "canary", "canary", "canary",
                                               "bake"]  # fmt: skip


def test_canary_weights_are_exact_and_pair_candidates_with_their_runtime():
    variants = list(starting_variants().values())
    rollout = decide.begin("digits", ("tf-v3", "torch-v3"), parse_plan({}), variants, 0.0)
    assert rollout.scale == 13  # 80 -> 1040 units
    assert rollout.noise == (("tf-v1", "torch-v1"),)
    for percent in (5, 25, 50, 100):
        targets = weights.at_weight(rollout, percent)
        total = sum(t.weight for t in targets.values())
        share = (targets["tf-v3"].weight + targets["torch-v3"].weight) / total
        assert share == pytest.approx(percent / 100, abs=0.001)
        assert targets["tf-v3"].weight == targets["torch-v3"].weight  # 40/40 like the baseline
    promoted = weights.promoted(rollout)
    assert promoted["tf-v3"].weight == 40
    assert promoted["tf-v3"].labels == ("stable",)
    assert not promoted["tf-v1"].enabled


def test_a_lone_candidate_takes_the_whole_baseline_and_others_keep_their_share():
    variants = [
        *starting_variants().values(),
        starting_variants()["tf-v1"].model_copy(update={"name": "tf-v2", "weight": 20}),
    ]
    plan = parse_plan({"baseline": ["tf-v1", "torch-v1"]})
    rollout = decide.begin("digits", ("torch-v3",), plan, variants, 0.0)
    targets = weights.at_weight(rollout, 50)
    total = sum(t.weight for t in targets.values())
    assert targets["tf-v2"].weight / total == pytest.approx(0.2)  # untouched: 20 of 100
    assert targets["torch-v3"].weight / total == pytest.approx(0.4)
    promoted = weights.promoted(rollout)
    assert (promoted["torch-v3"].weight, promoted["tf-v2"].weight) == (80, 20)


def test_a_rollout_that_cannot_start_says_why():
    variants = list(starting_variants().values())
    with pytest.raises(decide.RolloutRefused, match="no variant tf-v9"):
        decide.begin("digits", ("tf-v9",), parse_plan({}), variants, 0.0)
    drained = [v.model_copy(update={"weight": 0}) for v in variants]
    with pytest.raises(decide.RolloutRefused, match="no enabled variant with a weight"):
        decide.begin("digits", ("tf-v3",), parse_plan({}), drained, 0.0)


def test_the_readmes_plan_is_a_valid_plan():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("```text\ninterval: 10s", 1)[1].split("```", 1)[0]
    plan = parse_plan(yaml.safe_load("interval: 10s" + block))
    assert [s.kind for s in plan.steps] == ["shadow", "canary", "canary", "bake"]
    assert plan.noise is not None
    assert plan.noise[0].shadow == "torch-v1"
