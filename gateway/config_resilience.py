"""Resilience knobs, per backend and per model, named as Envoy names them.

A model's ``outlier_detection`` or ``retry_policy``, when set, replaces its backends' for that
model's variants; ``retry_budget`` belongs to the backend (it bounds the retries it receives).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OutlierDetection(_Strict):
    """Eject a variant that keeps failing (Envoy's ``outlier_detection``)."""

    enabled: bool = True
    """False: failures never eject (readiness still does)."""
    consecutive_5xx: int = Field(default=5, ge=1)
    """Failures in a row that eject: 5xx and UNAVAILABLE answers, connect errors, timeouts."""
    base_ejection_time_s: float = Field(default=30.0, gt=0)
    """The n-th ejection in a row lasts ``n x`` this long."""
    max_ejection_time_s: float = Field(default=300.0, gt=0)
    """Cap of one ejection."""
    max_ejection_percent: float = Field(default=10.0, ge=0, le=100)
    """At most this share of a model's variants ejected at once (at least one may always be;
    never the last healthy one)."""


class RetryBackOff(_Strict):
    """Envoy's ``retry_back_off``: the n-th retry waits a uniform draw in
    ``[0, min(max_interval, base_interval x (2^n - 1))]``."""

    base_interval_s: float = Field(default=0.025, gt=0)
    max_interval_s: float = Field(default=0.25, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> RetryBackOff:
        if self.max_interval_s < self.base_interval_s:
            raise ValueError("max_interval_s is below base_interval_s")
        return self


class RetryPolicy(_Strict):
    """Retry a request that failed before any reply byte on another variant (Envoy's
    ``retry_policy`` with ``retry_on: connect-failure,reset,retriable-status-codes,unavailable``
    and ``retriable_status_codes: [503]``)."""

    num_retries: int = Field(default=1, ge=0, le=5)
    """Retries after the first attempt; 0 turns retries off. Each goes to a variant not tried
    yet, so a model with two variants gets at most one."""
    per_try_timeout_s: float | None = Field(default=None, gt=0)
    """Deadline of one attempt (the request's deadline still covers them all); an attempt that
    runs out of it is retried. Null: each attempt may use what is left of the deadline."""
    retry_back_off: RetryBackOff = RetryBackOff()


class RetryBudget(_Strict):
    """Envoy's ``retry_budget``: retries in flight to a backend are capped at
    ``budget_percent`` of its active requests, but at least ``min_retry_concurrency``."""

    budget_percent: float = Field(default=20.0, ge=0, le=100)
    min_retry_concurrency: int = Field(default=3, ge=0)


class Resilience(_Strict):
    """What one variant's requests follow: its model's policies, else its backend's."""

    retry_policy: RetryPolicy = RetryPolicy()
    outlier_detection: OutlierDetection = OutlierDetection()
    retry_budget: RetryBudget = RetryBudget()


DEFAULT_RESILIENCE = Resilience()
