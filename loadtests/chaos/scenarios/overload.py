"""4x overload of a slow backend (50 ms a request, 2 at a time: 40 req/s of capacity) driven at
160 req/s, open loop, through one worker: two scenarios, one with the limits the README advises
for a backend of known concurrency, one with the defaults."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from deploy.local.process import StartError, free_port
from loadtests.chaos.client import TRANSPORT_ERROR, HttpClient
from loadtests.chaos.driver import Sample, open_loop, run
from loadtests.chaos.faults import fault_process
from loadtests.chaos.figures import Figure, judged, percentile, refused
from loadtests.chaos.processes import (
    gateway_config,
    get_json,
    oip_backend,
    one_variant,
    running,
    running_gateway,
    why_not_started,
)
from loadtests.chaos.scenario import Context, Scenario
from loadtests.chaos.scenarios.common import lag_figure, sender

NAME = "4x overload"
LATENCY_MS = 50
CONCURRENCY = 2
CAPACITY = CONCURRENCY * 1000 / LATENCY_MS  # req/s
RATE = 4 * CAPACITY
TIMEOUT_S = 1.0
ADVISED: dict[str, Any] = {
    "max_connections": CONCURRENCY,
    "circuit_breakers": {
        "max_requests": CONCURRENCY,
        "max_pending_requests": CONCURRENCY,
        "adaptive_concurrency": False,
    },
}
"""The README's advice for a backend that runs ``C`` calls at once: ``max_requests: C``,
``max_pending_requests: C``, ``adaptive_concurrency: false`` and, over REST,
``max_connections: C`` (per worker: one here)."""


def with_advised_limits(ctx: Context) -> list[Figure]:
    try:
        return one_run(ctx, "advised limits", ADVISED)
    except StartError as error:  # the knobs are not there (yet): say so
        return [refused(f"{NAME}, advised limits", "run", "runs", why_not_started(error))]


def with_defaults(ctx: Context) -> list[Figure]:
    return one_run(ctx, "defaults", {})


def one_run(ctx: Context, label: str, knobs: dict[str, Any]) -> list[Figure]:
    port = free_port()
    fault = fault_process(
        ctx.run_dir / label.replace(" ", "-"), "slow", port, LATENCY_MS, CONCURRENCY
    )
    config = gateway_config(
        {"slow": oip_backend(port, timeout_s=TIMEOUT_S, **knobs)}, {"slow": one_variant("slow")}
    )
    duration = ctx.seconds(5, 20)  # shorter shows less of a collapse: the first second is easy
    with running([fault]), running_gateway(ctx.run_dir / label.replace(" ", "-"), config) as gw:
        gw.wait_models_ready(["slow"])

        async def drive() -> tuple[list[Sample], list[Sample]]:
            client = HttpClient("127.0.0.1", gw.port, timeout_s=10)
            send = sender(client, "slow")
            unloaded = await open_loop(send, CAPACITY / 4, ctx.seconds(1.5, 4))
            loaded = await open_loop(send, RATE, duration)
            await client.close()
            return unloaded, loaded

        before = get_json(f"http://127.0.0.1:{port}/stats") or {}
        unloaded, loaded = run(drive())
        ctx.keep(f"{label} unloaded", unloaded)
        ctx.keep(f"{label} loaded", loaded)
        after = get_json(f"http://127.0.0.1:{port}/stats") or {}
    wasted = after.get("wasted", 0) - before.get("wasted", 0)
    scenario = f"{NAME}, {label}"
    found = judge(scenario, label == "defaults", unloaded, loaded, duration, wasted)
    return [*found, lag_figure(scenario, loaded), gw.log_figure(scenario)]


def judge(
    scenario: str,
    defaults: bool,
    unloaded: Sequence[Sample],
    loaded: Sequence[Sample],
    duration: float,
    wasted: int,
) -> list[Figure]:
    unloaded_p99 = percentile([s.latency_s for s in unloaded if s.ok], 0.99) * 1000
    accepted = [s.latency_s * 1000 for s in loaded if s.ok]
    rejected = [s.latency_s * 1000 for s in loaded if s.status not in (200, TRANSPORT_ERROR)]
    goodput = len(accepted) / duration
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(Counter(s.status for s in loaded).items()))
    info = Figure(
        scenario,
        f"answers to {len(loaded)} requests",
        f"{statuses}; backend work for clients gone: {wasted}",
        "-",
        None,
    )
    if defaults:
        floor = 0.5 * CAPACITY
        return [
            judged(
                scenario,
                "goodput",
                goodput,
                "req/s",
                f">= {floor:.0f} req/s (50% of {CAPACITY:.0f})",
                goodput >= floor,
            ),
            Figure(
                scenario,
                "accepted p50 / p99",
                f"{percentile(accepted, 0.5):.0f} / {percentile(accepted, 0.99):.0f} ms",
                "-",
                None,
            ),
            info,
        ]
    floor = 0.9 * CAPACITY
    allowed = 3 * unloaded_p99
    rejected_p99 = percentile(rejected, 0.99)
    return [
        Figure(
            scenario,
            f"rejected ({len(rejected)}) p50 / p99",
            f"{percentile(rejected, 0.5):.1f} / {rejected_p99:.1f} ms",
            "p99 < 5 ms",
            bool(rejected) and rejected_p99 < 5,
        ),
        judged(
            scenario,
            f"accepted p99 (unloaded p99 {unloaded_p99:.0f} ms)",
            percentile(accepted, 0.99),
            "ms",
            f"<= {allowed:.0f} ms (3 x unloaded)",
            bool(accepted) and percentile(accepted, 0.99) <= allowed,
        ),
        judged(
            scenario,
            "goodput",
            goodput,
            "req/s",
            f">= {floor:.0f} req/s (90% of {CAPACITY:.0f})",
            goodput >= floor,
        ),
        info,
    ]


WHAT = f"a backend of {CAPACITY:.0f} req/s ({CONCURRENCY} x {LATENCY_MS} ms) at {RATE:.0f} req/s"
ADVISED_SCENARIO = Scenario(
    f"{NAME}, advised limits", WHAT + ", the advised limits", (10, 28), with_advised_limits
)
DEFAULTS_SCENARIO = Scenario(f"{NAME}, defaults", WHAT + ", the defaults", (10, 28), with_defaults)
