"""A backend that accepts and never answers: its model's requests get 504 at the deadline (not
later, not at once), the gateway's memory stays flat while they pile up, and another model on a
healthy backend does not notice."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc

from deploy.local.process import free_port
from loadtests.chaos.client import HttpClient
from loadtests.chaos.driver import Sample, open_loop, run
from loadtests.chaos.faults import fault_process
from loadtests.chaos.figures import Figure, judged, percentile
from loadtests.chaos.grpc_client import Call, infer_request, model_infer
from loadtests.chaos.processes import (
    gateway_config,
    oip_backend,
    one_variant,
    running,
    running_gateway,
)
from loadtests.chaos.scenario import Context, Scenario
from loadtests.chaos.scenarios.common import (
    deadline_figures,
    grpc_deadline_figures,
    lag_figure,
    sender,
)

NAME = "hung backend"
DEADLINE_S = 1.0
RATE = 20.0
GRPC_RATE = 5.0
MIB = 1 << 20
RSS_GROWTH_LIMIT = 16 * MIB


def measure(ctx: Context) -> list[Figure]:
    hung_port, fine_port = free_port(), free_port()
    faults = [
        fault_process(ctx.run_dir, "hung", hung_port),
        fault_process(ctx.run_dir, "slow", fine_port, latency_ms=5, concurrency=64),
    ]
    config = gateway_config(
        {
            "hung": oip_backend(hung_port, timeout_s=DEADLINE_S),
            "fine": oip_backend(fine_port, timeout_s=DEADLINE_S),
        },
        {"stuck": one_variant("hung"), "other": one_variant("fine")},
        grpc={"host": "127.0.0.1", "port": free_port()},
    )
    with running(faults), running_gateway(ctx.run_dir / "gateway", config) as gateway:
        gateway.wait_models_ready(["other"])

        async def drive() -> tuple[list[Sample], list[Sample], list[Sample], list[Call], int, int]:
            """The other model's requests run throughout; the hung ones only in the middle
            third, so the thirds around it are its unloaded reference on the same machine."""
            client = HttpClient("127.0.0.1", gateway.port, timeout_s=10)
            other, stuck = sender(client, "other"), sender(client, "stuck")
            third = ctx.seconds(2.5, 8)
            start = time.monotonic()
            throughout = asyncio.create_task(open_loop(other, RATE, 3 * third))
            await asyncio.sleep(third)
            hung_run = asyncio.create_task(open_loop(stuck, RATE, third))
            grpc_run = asyncio.create_task(grpc_calls(gateway.config, GRPC_RATE, third))
            await asyncio.sleep(DEADLINE_S + 0.5)  # the first hung requests are held now
            rss_before = gateway.rss_bytes()
            await asyncio.sleep(third - DEADLINE_S - 0.5)  # as many held as there will be
            rss_after = gateway.rss_bytes()
            hung, samples, calls = await hung_run, await throughout, await grpc_run
            await client.close()
            loaded_until = start + 2 * third + DEADLINE_S + 0.5
            baseline = [
                s for s in samples if s.started < start + third or s.started >= loaded_until
            ]
            during = [s for s in samples if start + third <= s.started < loaded_until]
            return baseline, during, hung, calls, rss_before, rss_after

        baseline, during, hung, calls, rss_before, rss_after = run(drive())
    for phase, samples in (("unloaded", baseline), ("other", during), ("hung", hung)):
        ctx.keep(phase, samples)
    return [
        *figures(baseline, during, hung, rss_before, rss_after),
        *grpc_deadline_figures(NAME, calls, DEADLINE_S),
        lag_figure(NAME, during),
        gateway.log_figure(NAME),
    ]


async def grpc_calls(config: dict[str, Any], rate: float, duration_s: float) -> list[Call]:
    """``ModelInfer`` for the hung model at ``rate`` for ``duration_s``, on one channel."""
    listen = config["server"]["grpc"]
    async with grpc.aio.insecure_channel(f"{listen['host']}:{listen['port']}") as channel:
        request = infer_request("stuck")
        tasks = []
        for _ in range(int(rate * duration_s)):
            tasks.append(asyncio.create_task(model_infer(channel, request, 10 * DEADLINE_S)))
            await asyncio.sleep(1 / rate)
        return list(await asyncio.gather(*tasks))


def figures(
    baseline: list[Sample], during: list[Sample], hung: list[Sample], rss0: int, rss1: int
) -> list[Figure]:
    unloaded_p99 = percentile([s.latency_s for s in baseline if s.ok], 0.99) * 1000
    p99 = percentile([s.latency_s for s in during if s.ok], 0.99) * 1000
    failed = sum(not s.ok for s in during)
    allowed = 2 * unloaded_p99 + 5
    return [
        *deadline_figures(NAME, hung, DEADLINE_S),
        judged(
            NAME,
            "worker RSS growth",
            (rss1 - rss0) / MIB,
            "MiB",
            f"<= {RSS_GROWTH_LIMIT // MIB} MiB",
            rss1 - rss0 <= RSS_GROWTH_LIMIT,
        ),
        judged(NAME, f"other model: failed of {len(during)}", failed, "req", "0", failed == 0),
        judged(
            NAME,
            f"other model: p99 (before and after: {unloaded_p99:.1f} ms)",
            p99,
            "ms",
            f"<= {allowed:.1f} ms (2 x unloaded + 5)",
            p99 <= allowed,
        ),
    ]


SCENARIO = Scenario(
    NAME,
    f"a backend that never answers, {RATE:.0f} req/s to it and {RATE:.0f} req/s to another model",
    (10, 28),
    measure,
)
