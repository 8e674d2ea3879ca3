"""Pieces several scenarios share: sending one model's request, and judging deadline answers."""

from __future__ import annotations

from collections.abc import Sequence

from loadtests.chaos.client import HttpClient, Reply
from loadtests.chaos.driver import Sample, Send
from loadtests.chaos.figures import Figure, judged, percentile
from loadtests.chaos.grpc_client import Call
from loadtests.chaos.payload import INFER_HEADERS, digit_body, infer_path


def sender(client: HttpClient, model: str, tag: str = "", **headers: str) -> Send:
    """Request ``i`` to ``model``'s infer endpoint with these headers, tagged ``tag``."""
    body = digit_body()
    path = infer_path(model)
    all_headers = {**INFER_HEADERS, **headers}

    async def send(index: int) -> tuple[Reply, str]:
        return await client.request("POST", path, body, all_headers), tag or model

    return send


def lag_figure(scenario: str, samples: Sequence[Sample]) -> Figure:
    """The driver's own lag behind its schedule: when it is large, so is the machine's load,
    and the latency figures measure that too."""
    lags = [s.late_s * 1000 for s in samples]
    return Figure(
        scenario,
        "driver's send lag p50 / p99",
        f"{percentile(lags, 0.5):.1f} / {percentile(lags, 0.99):.1f} ms",
        "-",
        None,
    )


def deadline_figures(scenario: str, samples: Sequence[Sample], deadline_s: float) -> list[Figure]:
    """Every request answered 504 at the deadline, within ±20%."""
    answers = [("504" if s.status == 504 else str(s.status), s.latency_s) for s in samples]
    return _at_deadline(scenario, "504", "requests", answers, deadline_s)


def grpc_deadline_figures(scenario: str, calls: Sequence[Call], deadline_s: float) -> list[Figure]:
    """Every gRPC call ended DEADLINE_EXCEEDED at the deadline, within ±20%."""
    answers = [(c.code, c.latency_s) for c in calls]
    return _at_deadline(scenario, "DEADLINE_EXCEEDED", "gRPC calls", answers, deadline_s)


def _at_deadline(
    scenario: str,
    expected: str,
    what: str,
    answers: Sequence[tuple[str, float]],
    deadline_s: float,
) -> list[Figure]:
    timed_out = [latency for code, latency in answers if code == expected]
    share = 100 * len(timed_out) / max(1, len(answers))
    low, high = percentile(timed_out, 0.0), max(timed_out, default=float("nan"))
    others = sorted({code for code, _ in answers if code != expected})
    return [
        judged(
            scenario,
            f"{expected} of {len(answers)} {what}" + (f" (others: {others})" if others else ""),
            share,
            "%",
            "100 %",
            share == 100,
        ),
        Figure(
            scenario,
            f"{expected} latency min-max",
            f"{low * 1000:.0f}-{high * 1000:.0f} ms",
            f"{deadline_s * 800:.0f}-{deadline_s * 1200:.0f} ms (deadline ±20%)",
            bool(timed_out) and low >= 0.8 * deadline_s and high <= 1.2 * deadline_s,
        ),
    ]
