"""The suite's arithmetic and its table."""

from __future__ import annotations

import math

from loadtests.chaos.figures import Figure, judged, percentile, table


def test_nearest_rank_percentiles():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.0) == 1.0
    assert percentile([3.0], 0.99) == 3.0
    assert math.isnan(percentile([], 0.5))


def test_table_says_pass_miss_or_info_per_figure():
    figures = [
        judged("hung backend", "other model: failed", 0, "req", "0", True),
        judged("4x overload", "goodput", 10.04, "req/s", ">= 36 req/s", False),
        Figure("4x overload", "answers", "200: 50", "-", None),
    ]
    lines = table(figures).splitlines()
    assert [cell.strip() for cell in lines[0].split("|")[1:-1]] == [
        "scenario",
        "figure",
        "target",
        "pass/miss",
    ]
    assert len({len(line) for line in lines}) == 1  # columns line up
    assert lines[2].endswith("| pass      |")
    assert "goodput: 10.0 req/s" in lines[3]
    assert lines[3].endswith("| MISS      |")
    assert lines[4].endswith("| info      |")
