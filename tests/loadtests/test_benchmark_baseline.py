"""The baseline case's parts: an older tree's gateway started from its own code with only the
keys it knows, the balanced order of the rounds, and verdicts from per-round ratios."""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from deploy.local.process import free_port
from loadtests.benchmark import baseline, peers
from loadtests.benchmark.__main__ import main as bench_main
from loadtests.benchmark.wrk import WrkResult
from tests.support.wrk_runs import run_of

REPO = Path(__file__).resolve().parents[2]


def result(rate: float, p50: float = 1.0, p99: float = 2.0) -> WrkResult:
    return WrkResult(rate, p50, p50, p99, 0)


def test_rounds_follow_the_williams_design_and_keep_every_result() -> None:
    order: list[str] = []

    def target(name: str, rate: float) -> Callable[[], WrkResult]:
        def measure() -> WrkResult:
            order.append(name)
            return result(rate)

        return measure

    seen: list[tuple[str, int]] = []
    results = baseline.balanced(
        {name: target(name, rate) for name, rate in (("a", 10), ("b", 20), ("c", 30), ("d", 40))},
        5,
        lambda name, round_, _: seen.append((name, round_)),
    )
    rounds = ["".join(order[i : i + 4]) for i in range(0, 20, 4)]
    assert rounds == ["abdc", "bcad", "cdba", "dacb", "abdc"]  # a cycle of 4, then again
    assert seen[:5] == [("a", 1), ("b", 1), ("d", 1), ("c", 1), ("b", 2)]
    assert [r.requests_per_s for r in results["c"]] == [30] * 5


@pytest.mark.parametrize("targets", range(2, 9))
def test_each_target_takes_each_place_and_follows_each_other_equally_often(
    targets: int,
) -> None:
    cycle = baseline.williams_orders(targets)
    assert len(cycle) == (2 * targets if targets % 2 else targets)
    assert all(sorted(order) == list(range(targets)) for order in cycle)
    places = Counter((order[i], i) for order in cycle for i in range(targets))
    assert len(places) == targets * targets
    assert len(set(places.values())) == 1
    follows = Counter((order[i], order[i + 1]) for order in cycle for i in range(targets - 1))
    assert len(follows) == targets * (targets - 1)
    assert len(set(follows.values())) == 1
    if targets >= 4:
        wraps = [(cycle[k][-1], cycle[(k + 1) % len(cycle)][0]) for k in range(len(cycle))]
        assert all(last != first for last, first in wraps)


def test_an_older_tree_gets_only_the_server_keys_it_knows(tmp_path: Path) -> None:
    fields = baseline.server_fields(REPO)
    assert {"http", "workers", "admin"} <= fields
    config = peers.gateway_config(peers.Upstreams(1, 2, (3, 4)), free_port(), 1)
    older = baseline.for_tree(config, fields - {"admin"})
    assert "admin" not in older["server"]
    assert "admin" in config["server"]  # type: ignore[operator]
    assert older["models"] == config["models"]


def test_the_older_gateway_runs_from_its_tree(tmp_path: Path) -> None:
    # A copy of this tree's package at another path: the process must import that one.
    tree = tmp_path / "tree"
    shutil.copytree(
        REPO / "gateway", tree / "gateway", ignore=shutil.ignore_patterns("__pycache__")
    )
    (tree / "gateway" / "__main__.py").write_text(
        "import gateway, pathlib, sys\npathlib.Path(sys.argv[-1]).write_text(gateway.__file__)\n"
    )
    config = peers.gateway_config(peers.Upstreams(1, 2, (3, 4)), free_port(), 1)
    process, _ = baseline.old_gateway(tree, tmp_path / "run", config, "old-1")
    process.argv = [*process.argv, str(tmp_path / "imported")]
    process.start()
    assert process.popen is not None
    assert process.popen.wait(30) == 0
    assert (tmp_path / "imported").read_text() == str(tree / "gateway" / "__init__.py")


def test_verdicts_are_per_round_ratios_and_the_pooled_p99() -> None:
    found = {
        "tree": "/old",
        "label": "@abc",
        "closed": {
            1: {"requests_per_s": baseline.Pair([96, 90, 97], [100, 100, 100])},
            2: {"requests_per_s": baseline.Pair([80, 94, 90], [100, 100, 100])},
        },
        "fixed": {
            200: {
                1: {
                    "added p50": baseline.Pair([1.0, 1.04, 2.0], [1.0, 1.0, 1.0]),
                    "added p99": baseline.Pair([3.0, 3.3, 3.0], [3.0, 3.0, 2.9]),
                    "CPU us per request": baseline.Pair([300, 310], [290, 300]),
                }
            }
        },
        "pooled_p99": {
            200: {1: {"new_ms": 0.54, "old_ms": 0.5, "ratio": 1.08, "low": 0.9, "high": 1.2}}
        },
    }
    verdicts = {target: met for target, _, met in baseline.targets(found)}
    assert verdicts == {
        "closed loop, 1 worker(s): throughput >= 95% of @abc's": True,  # 0.96
        "closed loop, 2 worker(s): throughput >= 95% of @abc's": False,  # 0.90
        "200 req/s, 1 worker(s): added p50 <= 105% of @abc's": True,  # 1.04
        # The per-round p99 ratios (1.0, 1.1, 1.034) are shown, not judged: the pooled one is.
        "200 req/s, 1 worker(s): added p99 (pooled over the rounds) <= 105% of @abc's": False,
    }
    text = "\n".join(baseline.render(found))
    assert "closed loop, 2 worker(s): 90 vs 100 req/s, 0.900 (rounds 0.80-0.94)" in text
    assert "200 req/s, 1 worker(s), CPU us per request: 305.000 vs 295.000" in text
    assert "added p99 pooled over the rounds: 0.540 vs 0.500, 1.080 (bootstrap 0.90-1.20)" in text
    assert baseline.targets({}) == []
    assert baseline.render({}) == []


def test_the_pooled_added_p99_is_new_and_old_over_the_same_upstream_rounds() -> None:
    # Three rounds: the upstream alone has a 1 ms p99, old adds 0.5 ms to it, new 0.6 ms; one
    # round of new has a bad tail of its own, which the pool weighs as one round in three.
    direct = [run_of([0.2] * 990 + [1.0] * 10) for _ in range(3)]
    old = [run_of([0.4] * 990 + [1.5] * 10) for _ in range(3)]
    new = [run_of([0.4] * 990 + [1.6] * 10) for _ in range(2)] + [run_of([0.4] * 980 + [9.0] * 20)]
    pooled = baseline.pooled_added_p99(new, old, direct)
    assert pooled["old_ms"] == pytest.approx(0.5, abs=0.01)
    assert pooled["new_ms"] > 0.6
    assert pooled["ratio"] == pytest.approx(pooled["new_ms"] / pooled["old_ms"])
    assert pooled["low"] <= 1.2 <= pooled["high"]


def test_the_baseline_case_asks_for_a_tree(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        bench_main(["--cases", "baseline"])
    assert "--baseline DIR" in capsys.readouterr().err


def test_the_benchmark_names_every_missing_tool_before_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # neither wrk nor nginx on it
    assert bench_main(["--cases", "closed", "--out", str(tmp_path / "out.json")]) == 2
    err = capsys.readouterr().err
    assert "wrk is missing: `make bench` installs it" in err
    assert "nginx is missing: `make bench` installs it" in err
    assert not (tmp_path / "out.jsonl").exists()
