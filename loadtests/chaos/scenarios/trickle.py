"""A backend that answers one byte every 100 ms: the deadline covers the whole answer, not each
read, so requests get 504 at the deadline rather than when the last byte comes."""

from __future__ import annotations

from deploy.local.process import free_port
from loadtests.chaos.client import HttpClient
from loadtests.chaos.driver import Sample, open_loop, run
from loadtests.chaos.faults import fault_process
from loadtests.chaos.figures import Figure
from loadtests.chaos.processes import (
    gateway_config,
    oip_backend,
    one_variant,
    running,
    running_gateway,
)
from loadtests.chaos.scenario import Context, Scenario
from loadtests.chaos.scenarios.common import deadline_figures, sender

NAME = "trickling backend"
DEADLINE_S = 1.0
RATE = 5.0


def measure(ctx: Context) -> list[Figure]:
    port = free_port()
    faults = [fault_process(ctx.run_dir, "trickle", port, interval_ms=100)]
    config = gateway_config(
        {"trickle": oip_backend(port, timeout_s=DEADLINE_S)}, {"drip": one_variant("trickle")}
    )
    with running(faults), running_gateway(ctx.run_dir / "gateway", config) as gateway:
        gateway.wait_models_ready(["drip"])

        async def drive() -> list[Sample]:
            client = HttpClient("127.0.0.1", gateway.port, timeout_s=30)
            samples = await open_loop(sender(client, "drip"), RATE, ctx.seconds(2, 8))
            await client.close()
            return samples

        samples = run(drive())
    ctx.keep("trickle", samples)
    return [*deadline_figures(NAME, samples, DEADLINE_S), gateway.log_figure(NAME)]


SCENARIO = Scenario(
    NAME, f"a backend that answers a byte per 100 ms, {RATE:.0f} req/s", (4, 11), measure
)
