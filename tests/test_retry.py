"""Retry decisions: what may be retried, where it goes, the budget and the back-off."""

import pytest

from gateway.backends.base import BackendModel
from gateway.config_resilience import RetryBackOff, RetryBudget
from gateway.errors import (
    BackendDroppedReply,
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    InvalidInput,
)
from gateway.retry import RetryBudgets, back_off, next_variant, retry_reason
from gateway.routing.router import ModelRoute, Variant


class Named:
    def __init__(self, name: str) -> None:
        self.name = name


def variant(name: str, weight: int = 1) -> Variant:
    return Variant("digits", name, Named(name), BackendModel("digits", "1"), weight)  # type: ignore[arg-type]


A, B, C = variant("a", 50), variant("b", 30), variant("c", 20)
SELECTION = ModelRoute("digits", [A, B, C]).select(None, None)


def test_only_failures_before_a_reply_and_per_try_timeouts_are_retried():
    assert retry_reason(BackendUnavailable("refused"), False) == "unavailable"
    assert retry_reason(BackendDroppedReply("cut mid-reply"), False) is None
    assert retry_reason(BackendTimeout("slow"), True) == "per_try_timeout"
    assert retry_reason(BackendTimeout("slow"), False) is None  # the deadline is spent
    assert retry_reason(BackendError("500"), False) is None
    assert retry_reason(InvalidInput("400"), False) is None


def test_the_retry_goes_to_an_untried_healthy_variant():
    picks = {next_variant(SELECTION, [A], None, lambda v: v is not C) for _ in range(200)}
    assert picks == {B}
    assert next_variant(SELECTION, [A, B], None, lambda v: v is not C) is None


def test_panic_retries_an_unhealthy_one_only_when_none_is_healthy():
    assert next_variant(SELECTION, [A], None, lambda v: False) in (B, C)
    assert next_variant(SELECTION, [A, B, C], None, lambda v: False) is None


def test_a_sticky_retry_goes_to_the_next_rendezvous_choice():
    users = [f"user-{i}" for i in range(500)]
    for user in users:
        owner = SELECTION.split.pick_sticky(user)
        again = next_variant(SELECTION, [owner], user, None)

        def not_owner(v: Variant, owner: Variant = owner) -> bool:
            return v is not owner

        assert again is SELECTION.split.pick_sticky(user, not_owner)


def test_the_budget_is_a_share_of_active_requests_with_a_floor():
    budgets = RetryBudgets()
    budget = RetryBudget(budget_percent=20, min_retry_concurrency=3)
    counts = budgets.counts("one")
    counts.active, counts.retries = 10, 2
    assert budgets.admits("one", budget)
    counts.retries = 3
    assert not budgets.admits("one", budget)  # max(3, 20% of 10)
    counts.active = 100
    assert budgets.admits("one", budget)
    counts.retries = 20
    assert not budgets.admits("one", budget)


@pytest.mark.parametrize(("retry", "ceiling"), [(1, 0.025), (2, 0.075), (3, 0.175), (4, 0.25)])
def test_back_off_is_fully_jittered_and_capped(retry, ceiling):
    draws = [back_off(RetryBackOff(), retry) for _ in range(2_000)]
    assert 0 <= min(draws) < ceiling * 0.05
    assert ceiling * 0.95 < max(draws) <= ceiling
