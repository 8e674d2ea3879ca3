"""A backend that resets every connection, in a 50/50 split with a healthy one: the failures
happen before any byte of an answer, so unpinned requests are retried on the healthy variant
(and the resetting one ejected); requests pinned to it are not moved, and fail fast."""

from __future__ import annotations

import asyncio

from deploy.local.process import free_port
from loadtests.chaos.client import HttpClient
from loadtests.chaos.driver import Sample, open_loop, run
from loadtests.chaos.faults import fault_process
from loadtests.chaos.figures import Figure, judged, percentile
from loadtests.chaos.processes import gateway_config, oip_backend, running, running_gateway
from loadtests.chaos.scenario import Context, Scenario
from loadtests.chaos.scenarios.common import sender

NAME = "resetting backend"
RATE = 20.0
FAST_FAIL_MS = 100.0


def measure(ctx: Context) -> list[Figure]:
    reset_port, fine_port = free_port(), free_port()
    faults = [
        fault_process(ctx.run_dir, "reset", reset_port),
        fault_process(ctx.run_dir, "slow", fine_port, latency_ms=5, concurrency=64),
    ]
    variants = [
        {"name": "resets", "backend": "resets", "version": 1, "weight": 50},
        {"name": "fine", "backend": "fine", "version": 1, "weight": 50},
    ]
    config = gateway_config(
        {"resets": oip_backend(reset_port, timeout_s=2), "fine": oip_backend(fine_port)},
        {"flaky": {"variants": variants}},
    )
    with running(faults), running_gateway(ctx.run_dir / "gateway", config) as gateway:
        gateway.wait_models_ready(["flaky"])  # ready: one of its variants is

        async def drive() -> tuple[list[Sample], list[Sample]]:
            client = HttpClient("127.0.0.1", gateway.port, timeout_s=10)
            duration = ctx.seconds(3, 15)
            pinned = asyncio.create_task(
                open_loop(
                    sender(client, "flaky", "pinned", **{"x-gateway-variant": "resets"}),
                    RATE / 4,
                    duration,
                )
            )
            unpinned = await open_loop(sender(client, "flaky"), RATE, duration)
            result = unpinned, await pinned
            await client.close()
            return result

        unpinned, pinned = run(drive())
    ctx.keep("unpinned", unpinned)
    ctx.keep("pinned", pinned)
    failed = [s for s in unpinned if not s.ok]
    moved = sum(s.ok for s in pinned)
    p99 = percentile([s.latency_s for s in pinned], 0.99) * 1000
    statuses = sorted({s.status for s in pinned})
    return [
        judged(
            NAME,
            f"unpinned failed of {len(unpinned)}"
            + (f" (statuses {sorted({s.status for s in failed})})" if failed else ""),
            len(failed),
            "req",
            "0 (retried on the healthy variant)",
            not failed,
        ),
        judged(NAME, "pinned requests moved", moved, "req", "0 (pins are not moved)", moved == 0),
        judged(
            NAME,
            f"pinned requests' p99 (statuses {statuses})",
            p99,
            "ms",
            f"< {FAST_FAIL_MS:.0f} ms (fail fast)",
            p99 < FAST_FAIL_MS,
        ),
        gateway.log_figure(NAME),
    ]


SCENARIO = Scenario(
    NAME,
    f"a backend that resets every connection, 50/50 with a healthy one, {RATE:.0f} req/s",
    (6, 18),
    measure,
)
