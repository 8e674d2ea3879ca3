"""How scenarios judge what they measured, on made-up samples: the verdicts can go both ways."""

from __future__ import annotations

from loadtests.chaos.driver import Sample
from loadtests.chaos.scenarios.common import deadline_figures
from loadtests.chaos.scenarios.killed import HEALTHY, KILLED, Timeline, sticky_figures
from loadtests.chaos.scenarios.killed import unpinned_figures as killed_unpinned
from loadtests.chaos.scenarios.overload import judge

AT = Timeline(killed=10.0, ready=20.0)


def sample(started: float, status: int = 200, variant: str = "", tag: str = "", ms=10.0):
    return Sample(0, started, ms / 1000, status, variant, tag, b"", "")


def verdicts(figures):
    return {f.name.split(" (")[0]: f.passed for f in figures if f.passed is not None}


def user(tag: str, *served: tuple[float, str, int]) -> list[Sample]:
    return [sample(t, status, variant, tag) for t, variant, status in served]


def test_sticky_users_kept_answered_and_back_pass():
    victim = user("a", (1, KILLED, 200), (12, HEALTHY, 200), (26, KILLED, 200))
    other = user("b", (1, HEALTHY, 200), (12, HEALTHY, 200), (26, HEALTHY, 200))
    got = verdicts(sticky_figures(victim + other, AT))
    assert got == {
        "users served by both variants before the kill": True,
        "failed requests of its 1 users": True,
        "users answered during the outage": True,
        f"users back on {KILLED} 5 s after it was ready": True,
        "other users": True,
    }


def test_sticky_users_failing_staying_away_or_moving_others_miss():
    victim = user("a", (1, KILLED, 200), (12, "", 503), (26, HEALTHY, 200))
    other = user("b", (1, HEALTHY, 200), (26, KILLED, 200))
    split = user("c", (1, HEALTHY, 200), (2, KILLED, 200))
    got = verdicts(sticky_figures(victim + other + split, AT))
    assert got == {
        "users served by both variants before the kill": False,
        "failed requests of its 1 users": False,
        "users answered during the outage": False,
        f"users back on {KILLED} 5 s after it was ready": False,
        "other users": False,
    }


def test_no_sticky_user_of_the_killed_variant_is_not_a_pass():
    other = user("b", (1, HEALTHY, 200), (26, HEALTHY, 200))
    got = verdicts(sticky_figures(other, AT))
    assert got["failed requests of its 0 users"] is False


def test_traffic_back_is_the_first_answer_from_the_restarted_variant():
    early = [sample(21, variant=HEALTHY), sample(24.0, variant=KILLED)]
    assert [f.passed for f in killed_unpinned(early, AT)][:2] == [True, True]
    late = [sample(21, variant=HEALTHY), sample(25.5, variant=KILLED), sample(12, 503)]
    assert [f.passed for f in killed_unpinned(late, AT)][:2] == [False, False]


def test_deadline_answers_must_all_be_504_near_the_deadline():
    assert [f.passed for f in deadline_figures("x", [sample(0, 504, ms=1100)], 1.0)] == [
        True,
        True,
    ]
    assert [f.passed for f in deadline_figures("x", [sample(0, 504, ms=1300)], 1.0)] == [
        True,
        False,
    ]
    mixed = [sample(0, 504, ms=1000), sample(0, 502, ms=5)]
    assert [f.passed for f in deadline_figures("x", mixed, 1.0)] == [False, True]


def test_overload_with_limits_needs_fast_rejections_short_waits_and_goodput():
    unloaded = [sample(0, ms=55) for _ in range(10)]
    good = [sample(0, ms=120) for _ in range(37)] + [sample(0, 503, ms=2) for _ in range(120)]
    assert all(f.passed is not False for f in judge("o", False, unloaded, good, 1.0, 0))
    slow_reject = [sample(0, ms=120) for _ in range(37)] + [sample(0, 503, ms=900)]
    assert [f.passed for f in judge("o", False, unloaded, slow_reject, 1.0, 0)][:3] == [
        False,
        True,
        True,
    ]
    collapsed = [sample(0, ms=990) for _ in range(3)] + [sample(0, 504, ms=1000)] * 150
    assert judge("o", True, unloaded, collapsed, 1.0, 500)[0].passed is False
