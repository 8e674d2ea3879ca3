"""A rollout plan: its steps, its gates and where its metrics come from, validated like the
gateway's config (``gateway rollout start --plan FILE``; refusals name the key path).

The default plan: shadow (1,000 comparisons or 10 minutes) -> canary 5% -> 25% -> 50% -> 100%
-> bake -> promote.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from gateway.config_problems import key_path
from gateway.errors import CLIENT_CLOSED

DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: Any) -> Any:
    """``90``, ``"90s"``, ``"1.5m"``, ``"2h"`` -> seconds; anything else is left to pydantic."""
    if isinstance(value, str):
        match = DURATION.match(value)
        if match is None:
            raise ValueError(f"{value!r} is not a duration (a number of seconds, or 30s, 5m, 1h)")
        return float(match[1]) * UNIT_SECONDS[match[2]]
    return value


Seconds = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
GateName = Literal["error_rate", "latency", "divergence"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Gates(_Strict):
    """Candidate against baseline; each gate passes, fails, or has too little data to say."""

    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    """One-sided confidence of every bound: a gate fails only when its lower bound is past the
    threshold, and (error rate, divergence) passes only when its upper bound is within it."""
    min_requests: int = Field(default=200, ge=1)
    """Requests each side needs in the window before the error-rate and latency gates judge."""
    max_error_rate_increase: float = Field(default=0.01, ge=0, le=1)
    """Candidate's error rate minus the baseline's, at most (0.01: one percentage point)."""
    error_codes: tuple[Annotated[str, Field(pattern=r"^[1-5](xx|\d\d)$")], ...] = ("4xx", "5xx")
    """Which ``code`` values count as errors: the difference between the two sides cancels
    clients' own bad requests, and a candidate that refuses valid input answers 400."""
    ignored_codes: tuple[int, ...] = (CLIENT_CLOSED,)
    """Codes counted as neither request nor error (499: the client went away)."""
    latency_metric: Literal["upstream", "request"] = "upstream"
    """``upstream``: the backend call (gateway_upstream_duration_seconds), what the variant
    itself costs; ``request``: end to end (gateway_request_duration_seconds)."""
    latency_quantile: float = Field(default=0.99, gt=0, lt=1)
    max_latency_ratio: float = Field(default=1.5, ge=1)
    """The candidate's p99 may be at most this times the baseline's..."""
    latency_slack_s: float = Field(default=0.005, ge=0)
    """...or this much slower, whichever allows more (sub-millisecond p99s are noisy)."""
    min_comparisons: int = Field(default=200, ge=1)
    """Shadow comparisons each pair (candidate's, noise baseline's) needs before judging."""
    max_divergence_increase: float = Field(default=0.05, ge=0, le=1)
    """Candidate's divergence rate minus the noise baseline's, at most. A new version rightly
    answers some inputs differently (digits v3 against v1: 1.1% of the test split); moving
    one version to another runtime should not (there, 0.001)."""
    max_abs_diff_ratio: float | None = Field(default=None, ge=1)
    """If set: the candidate's p99 of the largest absolute output difference may be at most
    this times the noise pair's (null: reported, not judged)."""


class ShadowCompare(_Strict):
    """The gateway's shadow comparison for this step. A new *version* rightly answers with
    other probabilities: ``atol: 1`` (no element can differ by more) with ``top_k: 1`` makes
    "diverge" mean "a different digit"; moving a version to another runtime keeps the defaults."""

    atol: float | None = Field(default=None, ge=0)
    rtol: float | None = Field(default=None, ge=0)
    top_k: int | None = Field(default=None, ge=0)


class ShadowStep(_Strict):
    kind: Literal["shadow"]
    percent: float = Field(default=100, gt=0, le=100)
    """Share of the model's requests also sent to the candidates."""
    requests: int = Field(default=1000, ge=1)
    """The step is done after this many comparisons per candidate..."""
    duration: Seconds = 600
    """...or after this long, whichever comes first (and then its gates must pass)."""
    gates: tuple[GateName, ...] = ("divergence",)
    compare: ShadowCompare | None = None
    """How the gateway compares the answers (``models.<m>.shadow``'s knobs of that name);
    null: as the gateway's config says (by default: every element within 1e-5, same top-1)."""


class CanaryStep(_Strict):
    kind: Literal["canary"]
    weight: float = Field(gt=0, le=100)
    """The candidates' share of the traffic of the baseline and candidates, in percent."""
    duration: Seconds = 120
    """Least time at this weight; the step ends once it has passed and the gates pass."""
    gates: tuple[GateName, ...] = ("error_rate", "latency")


class BakeStep(_Strict):
    """The candidates alone (100%), the old variants drained but enabled, before promotion."""

    kind: Literal["bake"]
    duration: Seconds = 300
    gates: tuple[GateName, ...] = ("error_rate", "latency")


Step = Annotated[ShadowStep | CanaryStep | BakeStep, Field(discriminator="kind")]
AnyStep = ShadowStep | CanaryStep | BakeStep

DEFAULT_STEPS: tuple[AnyStep, ...] = (
    ShadowStep(kind="shadow"),
    CanaryStep(kind="canary", weight=5),
    CanaryStep(kind="canary", weight=25),
    CanaryStep(kind="canary", weight=50),
    CanaryStep(kind="canary", weight=100),
    BakeStep(kind="bake"),
)


class Metrics(_Strict):
    """Where the gateway's metrics come from: Prometheus (all replicas, as it scrapes them), or
    the replicas' own ``/metrics``, scraped by the controller at every evaluation."""

    prometheus: str | None = None
    """Base URL of a Prometheus that scrapes every gateway replica (``/api/v1/query``)."""
    scrape: tuple[str, ...] = ()
    """Each replica's metrics URL (``http://gateway-1:8000/metrics``), when there is none."""


class NoisePair(_Strict):
    primary: str
    shadow: str


class Plan(_Strict):
    interval: Seconds = 10
    """How often the controller evaluates: a failed gate is acted on within one interval."""
    settle: Seconds = 5
    """After a traffic change, metrics of this long are left out (all workers and replicas
    apply a change within 2 s)."""
    no_data_limit: Seconds = 600
    """How long a step waits past its duration for enough data before pausing (and saying so)."""
    max_action_attempts: int = Field(default=3, ge=1)
    """A step's traffic change that fails this many times is rolled back."""
    baseline: tuple[str, ...] = ()
    """The variants the candidates are measured against and replace; default: every enabled
    variant with a weight, candidates excepted."""
    noise: tuple[NoisePair, ...] | None = None
    """Shadow pairs that should agree (the same version on two runtimes), whose divergence is
    the noise the candidates are judged above; default: baseline variants of one version on
    different backends; ``[]``: none (divergence is judged against zero)."""
    metrics: Metrics = Metrics()
    gates: Gates = Gates()
    steps: tuple[Step, ...] = Field(default=DEFAULT_STEPS, min_length=1)


class PlanError(Exception):
    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        lines = "\n".join(f"  {where}: {reason}" for where, reason in problems)
        super().__init__(f"invalid rollout plan {source}:\n{lines}")


def parse_plan(data: Any, source: str = "<plan>") -> Plan:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PlanError(source, [("<root>", "the plan must be a mapping")])
    try:
        return Plan.model_validate(data)
    except ValidationError as error:
        problems = [
            (key_path(_written(tuple(item["loc"]))), item["msg"].removeprefix("Value error, "))
            for item in error.errors(include_url=False)
        ]
        raise PlanError(source, list(dict.fromkeys(problems))) from None


def _written(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    # The tagged union puts the step's kind after its index (steps[1].canary.weight).
    if len(loc) > 2 and loc[0] == "steps" and loc[2] in ("shadow", "canary", "bake"):
        return loc[:2] + loc[3:]
    return loc


def load_plan(path: str | Path) -> Plan:
    source = str(path)
    try:
        text = Path(path).read_bytes()
    except OSError as error:
        raise PlanError(source, [("<file>", error.strerror or str(error))]) from None
    try:
        data = orjson.loads(text) if source.endswith(".json") else yaml.safe_load(text)
    except (orjson.JSONDecodeError, yaml.YAMLError) as error:
        raise PlanError(source, [("<file>", f"cannot be parsed: {error}")]) from None
    return parse_plan(data, source)
