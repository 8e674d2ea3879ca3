"""SIGTERM to a two-worker gateway under load: every request it had taken before the signal is
answered (the backend takes 300 ms, so about 15 are in flight), and it exits 0 within
``graceful_shutdown_s``."""

from __future__ import annotations

import asyncio
import time

from deploy.local.process import free_port
from loadtests.chaos.client import HttpClient
from loadtests.chaos.driver import Sample, open_loop, run
from loadtests.chaos.faults import fault_process
from loadtests.chaos.figures import Figure, judged
from loadtests.chaos.processes import (
    gateway_config,
    oip_backend,
    one_variant,
    running,
    running_gateway,
)
from loadtests.chaos.scenario import Context, Scenario
from loadtests.chaos.scenarios.common import sender

NAME = "SIGTERM under load"
RATE = 50.0
LATENCY_MS = 300
GRACE_S = 10.0


def measure(ctx: Context) -> list[Figure]:
    port = free_port()
    faults = [fault_process(ctx.run_dir, "slow", port, latency_ms=LATENCY_MS, concurrency=256)]
    config = gateway_config(
        {"slow": oip_backend(port)},
        {"slow": one_variant("slow")},
        workers=2,
        graceful_shutdown_s=GRACE_S,
    )
    with running(faults), running_gateway(ctx.run_dir / "gateway", config) as gateway:
        gateway.wait_models_ready(["slow"])

        async def drive() -> tuple[list[Sample], float, int | None, float]:
            client = HttpClient("127.0.0.1", gateway.port, timeout_s=GRACE_S + 5)
            stop = asyncio.Event()
            load = asyncio.create_task(open_loop(sender(client, "slow"), RATE, 60, stop))
            await asyncio.sleep(ctx.seconds(1.5, 6))
            stop.set()  # no request starts after the signal
            gateway.terminate()
            signalled = time.monotonic()
            samples = await load
            code = await asyncio.to_thread(gateway.wait_exit, GRACE_S + 10)
            exited = time.monotonic() - signalled
            await client.close()
            return samples, signalled, code, exited

        samples, signalled, code, exited = run(drive())
    ctx.keep("load", samples)
    taken = [s for s in samples if s.started < signalled]
    in_flight = sum(s.ended > signalled for s in taken)
    dropped = [s for s in taken if not s.ok]
    why = sorted({s.status for s in dropped})
    return [
        judged(
            NAME,
            f"dropped of {len(taken)} ({in_flight} in flight at the signal)"
            + (f", statuses {why}" if dropped else ""),
            len(dropped),
            "req",
            "0",
            not dropped,
        ),
        Figure(
            NAME,
            "exit",
            f"code {code} after {exited:.1f} s",
            f"code 0 within {GRACE_S:.0f} s",
            code == 0 and exited <= GRACE_S,
        ),
        gateway.log_figure(NAME),
    ]


SCENARIO = Scenario(
    NAME, f"{RATE:.0f} req/s to a 300 ms backend, then SIGTERM to the gateway", (10, 15), measure
)
