import subprocess
import sys
from collections import Counter

import pytest

from gateway.routing.split import BUCKETS, Split, rendezvous_table, sticky_bucket

NAMES = ["tf-v1", "torch-v1", "tf-v2", "torch-v2"]


def split(weights):
    return Split("digits", NAMES, NAMES, weights)


def test_random_picks_follow_weights_within_statistical_bounds():
    weights = [40, 40, 10, 10]
    n = 40_000
    counts = Counter(split(weights).pick() for _ in range(n))
    for name, weight in zip(NAMES, weights, strict=True):
        p = weight / sum(weights)
        sigma = (n * p * (1 - p)) ** 0.5
        assert abs(counts[name] - n * p) < 5 * sigma, (name, counts)


def test_zero_weight_is_drained():
    s = split([1, 0, 3, 0])
    picks = {s.pick() for _ in range(2_000)} | {s.pick_sticky(f"u{i}") for i in range(2_000)}
    assert picks == {"tf-v1", "tf-v2"}


def test_all_zero_weights_share_equally():
    s = Split("m", ["a", "b"], ["a", "b"], [0, 0])
    assert {s.pick() for _ in range(200)} == {"a", "b"}


def test_sticky_is_deterministic_and_follows_weights():
    s = split([40, 40, 10, 10])
    users = [f"user-{i}" for i in range(20_000)]
    first = [s.pick_sticky(u) for u in users]
    again = split([40, 40, 10, 10])
    assert first == [again.pick_sticky(u) for u in users]
    counts = Counter(first)
    for name, share in zip(NAMES, [0.4, 0.4, 0.1, 0.1], strict=True):
        assert abs(counts[name] / len(users) - share) < 0.02, counts


def test_raising_a_canary_only_moves_users_toward_it():
    users = [f"user-{i}" for i in range(20_000)]
    before = split([45, 45, 5, 5])
    after = split([45, 45, 25, 5])
    moved = 0
    for user in users:
        old, new = before.pick_sticky(user), after.pick_sticky(user)
        if old != new:
            assert new == "tf-v2", (user, old, new)
            moved += 1
    assert moved > 0


def test_lowering_a_weight_only_moves_users_away_from_it():
    users = [f"user-{i}" for i in range(20_000)]
    before = split([45, 45, 25, 5])
    after = split([45, 45, 5, 5])
    moved = 0
    for user in users:
        old, new = before.pick_sticky(user), after.pick_sticky(user)
        if old != new:
            assert old == "tf-v2"
            moved += 1
    assert moved > 0


def test_adding_a_variant_only_moves_users_to_it():
    users = [f"user-{i}" for i in range(10_000)]
    before = Split("digits", NAMES[:2], NAMES[:2], [50, 50])
    after = Split("digits", NAMES[:3], NAMES[:3], [50, 50, 10])
    for user in users:
        old, new = before.pick_sticky(user), after.pick_sticky(user)
        assert new in (old, "tf-v2")


def test_table_is_the_same_in_another_process():
    """No shared state: a fresh interpreter (other hash seed) computes the same assignment."""
    code = (
        "from gateway.routing.split import rendezvous_table, sticky_bucket;"
        "t = rendezvous_table('digits', ['a', 'b', 'c'], [5, 3, 2]);"
        "print(sticky_bucket('digits', 'alice'), t.sum(), t[:20].tolist())"
    )
    env = {"PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout.split(" ", 2)
    table = rendezvous_table("digits", ["a", "b", "c"], [5, 3, 2])
    assert int(out[0]) == sticky_bucket("digits", "alice")
    assert int(out[1]) == int(table.sum())
    assert out[2].strip() == str(table[:20].tolist())


def test_sticky_keys_spread_evenly_over_the_buckets():
    """200,000 keys over the 10,000 buckets: a chi-square statistic within 6 sigma of its mean,
    so that every variant's share of users is its share of buckets."""
    keys = 200_000
    counts = Counter(sticky_bucket("digits", f"user-{i}") for i in range(keys))
    assert min(counts) >= 0
    assert max(counts) < BUCKETS
    expected = keys / BUCKETS
    chi2 = sum((counts[b] - expected) ** 2 / expected for b in range(BUCKETS))
    freedom = BUCKETS - 1
    assert abs(chi2 - freedom) < 6 * (2 * freedom) ** 0.5, chi2


def test_split_needs_matching_lengths():
    with pytest.raises(ValueError, match="one name and one weight"):
        Split("m", ["a"], ["a", "b"], [1, 1])
