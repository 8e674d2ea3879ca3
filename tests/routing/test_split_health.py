"""Health in the split: exact renormalisation among the healthy, sticky keys moved to their next
rendezvous choice (and nobody else), panic when none is healthy."""

from collections import Counter

from gateway.routing.split import Split

NAMES = ["tf-v1", "torch-v1", "tf-v2", "torch-v2"]
WEIGHTS = [40, 30, 20, 10]
USERS = [f"user-{i}" for i in range(20_000)]


def split(names=NAMES, weights=WEIGHTS):
    return Split("digits", names, names, weights)


def healthy_but(*sick):
    return lambda name: name not in sick


def test_random_picks_renormalise_over_the_healthy_weights():
    n = 40_000
    counts = Counter(split().pick(healthy_but("torch-v1")) for _ in range(n))
    assert "torch-v1" not in counts
    total = 40 + 20 + 10
    for name, weight in [("tf-v1", 40), ("tf-v2", 20), ("torch-v2", 10)]:
        p = weight / total
        sigma = (n * p * (1 - p)) ** 0.5
        assert abs(counts[name] - n * p) < 5 * sigma, (name, counts)


def test_sticky_keys_of_a_sick_variant_go_to_their_next_choice_and_nobody_else_moves():
    s = split()
    before = [s.pick_sticky(u) for u in USERS]
    during = [s.pick_sticky(u, healthy_but("torch-v1")) for u in USERS]
    # The next rendezvous choice is the owner in the same split without the sick variant.
    without = split(["tf-v1", "tf-v2", "torch-v2"], [40, 20, 10])
    moved = 0
    for user, old, new in zip(USERS, before, during, strict=True):
        if old == "torch-v1":
            assert new == without.pick_sticky(user)
            moved += 1
        else:
            assert new == old
    assert 0.2 < moved / len(USERS) < 0.4  # torch-v1's 30%
    # Back to the owner once it is healthy again.
    assert [s.pick_sticky(u, healthy_but()) for u in USERS] == before
    assert [s.pick_sticky(u) for u in USERS] == before


def test_two_sick_variants_move_their_keys_to_the_best_healthy_one():
    s = split()
    without = split(["tf-v1", "torch-v2"], [40, 10])
    for user in USERS[:5_000]:
        old = s.pick_sticky(user)
        new = s.pick_sticky(user, healthy_but("torch-v1", "tf-v2"))
        assert new == (without.pick_sticky(user) if old in ("torch-v1", "tf-v2") else old)


def test_next_choice_is_the_same_in_a_fresh_split():
    """Every worker builds its own split: the same names and weights give the same moves."""
    picks = [split().pick_sticky(u, healthy_but("tf-v1")) for u in USERS[:2_000]]
    assert picks == [split().pick_sticky(u, healthy_but("tf-v1")) for u in USERS[:2_000]]


def test_panic_when_no_variant_with_weight_is_healthy():
    s = split()
    nobody = healthy_but(*NAMES)
    counts = Counter(s.pick(nobody) for _ in range(10_000))
    assert set(counts) == set(NAMES)
    assert [s.pick_sticky(u, nobody) for u in USERS[:2_000]] == [
        s.pick_sticky(u) for u in USERS[:2_000]
    ]


def test_a_healthy_drained_variant_is_not_a_way_out_of_panic():
    s = split(["a", "b", "drained"], [1, 1, 0])
    only_drained = healthy_but("a", "b")
    assert {s.pick(only_drained) for _ in range(500)} == {"a", "b"}
    assert s.pick_among(only_drained) is None


def test_pick_among_with_nothing_allowed_is_none():
    s = split()
    assert s.pick_among(lambda name: False) is None
    assert s.pick_among(lambda name: False, "user-1") is None
