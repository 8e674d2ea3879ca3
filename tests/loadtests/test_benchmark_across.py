"""The baseline case's added p99 pooled over several runs of it (``benchmark.across``)."""

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from loadtests.benchmark import across
from tests.support.wrk_runs import run_of


def record(case: str, target: str, round_: int, samples: list[float]) -> str:
    result = asdict(run_of(samples))
    return json.dumps({"case": case, "target": target, "round": round_, **result})


def run_file(tmp_path: Path, name: str, new_slow: float, old_slow: float, rounds: int = 3) -> Path:
    """One run at 200 req/s, 1 worker: 1,000 requests a round, the slowest 2% at ``*_slow`` ms
    on top of the upstream's own (0.1 ms, its slowest 2% at 0.2 ms)."""
    lines = [json.dumps({"case": "start", "message": "the upstream ready"})]
    lines.append(json.dumps({"case": "baseline closed", "target": "gateway-1", "round": 1}))
    for r in range(1, rounds + 1):
        lines.append(record("baseline 200 req/s", "direct", r, [0.1] * 980 + [0.2] * 20))
        lines.append(record("baseline 200 req/s", "gateway-1", r, [0.5] * 980 + [new_slow] * 20))
        old = [0.5] * 980 + [old_slow] * 20
        lines.append(record("baseline 200 req/s", "gateway-1 @abc1234", r, old))
    path = tmp_path / f"{name}.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_runs_pool_into_one_added_p99_and_each_run_is_shown(tmp_path, capsys):
    # Run a's new process was unlucky (1.2 ms against 1.0), run b's old one was (1.2 against
    # 1.0): each run alone misses or passes by 25%, together they are even.
    paths = [run_file(tmp_path, "a", 1.2, 1.0), run_file(tmp_path, "b", 1.0, 1.2)]
    runs = [across.read_run(p.read_text().splitlines()) for p in paths]
    assert set(runs[0]) == {(200, 1)}
    cell = runs[0][(200, 1)]
    assert len(cell.new) == len(cell.old) == len(cell.direct) == 3
    assert across.ratio([cell]) == pytest.approx((1.2 - 0.2) / (1.0 - 0.2), rel=0.01)
    new, old = across.added_p99([r[(200, 1)] for r in runs])
    assert new == pytest.approx(old, rel=0.01)
    assert across.main([str(p) for p in paths]) == 0
    out = capsys.readouterr().out
    assert "[met] 200 req/s, 1 worker(s)" in out
    assert "each run: 1.250 0.800" in out


def test_a_budget_missed_over_every_run_fails(tmp_path, capsys):
    paths = [run_file(tmp_path, name, 1.3, 1.0) for name in "ab"]
    assert across.main([str(p) for p in paths]) == 1
    assert "[MISSED] 200 req/s, 1 worker(s)" in capsys.readouterr().out


def test_a_run_that_is_not_a_baseline_run_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no baseline"):
        across.read_run([json.dumps({"case": "fixed 200 req/s", "target": "gateway"})])
    lopsided = run_file(tmp_path, "a", 1.0, 1.0).read_text().splitlines()[:-1]
    with pytest.raises(ValueError, match="rounds differ"):
        across.read_run(lopsided)
