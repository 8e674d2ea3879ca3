"""500 slow clients against one worker, while normal requests keep coming: those must not notice
(p99 under 50 ms, none failed). Half the slow clients send their headers a byte a second
(slowloris), half send complete headers announcing a 64 KiB body and then send that a byte a
second (R-U-Dead-Yet). One the gateway closes is opened again, so the pressure stays at 500."""

from __future__ import annotations

import asyncio
import contextlib
import time

from deploy.local.process import free_port
from loadtests.chaos.client import HttpClient
from loadtests.chaos.driver import Sample, open_loop, run
from loadtests.chaos.faults import fault_process
from loadtests.chaos.figures import Figure, judged, percentile
from loadtests.chaos.processes import (
    gateway_config,
    oip_backend,
    one_variant,
    running,
    running_gateway,
)
from loadtests.chaos.scenario import Context, Scenario
from loadtests.chaos.scenarios.common import lag_figure, sender

NAME = "500 slowloris connections"
CONNECTIONS = 500
BYTE_EVERY_S = 1.0
RATE = 40.0
P99_LIMIT_MS = 50.0


SLOW_HEADERS = b"POST /v2/models/fine/infer HTTP/1.1\r\nhost: gateway\r\nx-slow: "
SLOW_BODY = (
    b"POST /v2/models/fine/infer HTTP/1.1\r\nhost: gateway\r\n"
    b"content-type: application/json\r\ncontent-length: 65536\r\n\r\n{"
)


async def slow_client(
    port: int, start: bytes, offset: float, stop: asyncio.Event, closed: list[float]
) -> None:
    """Keep one connection sending a byte at a time after ``start``; note when the gateway
    closes it."""
    await asyncio.sleep(offset)
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(BYTE_EVERY_S)
            continue
        opened = time.monotonic()
        try:
            writer.write(start)
            while not stop.is_set():
                await asyncio.sleep(BYTE_EVERY_S)
                if reader.at_eof():
                    raise ConnectionResetError
                writer.write(b"a")
                await writer.drain()
        except OSError:
            closed.append(time.monotonic() - opened)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def measure(ctx: Context) -> list[Figure]:
    port = free_port()
    faults = [fault_process(ctx.run_dir, "slow", port, latency_ms=2, concurrency=64)]
    config = gateway_config({"fine": oip_backend(port)}, {"fine": one_variant("fine")})
    with running(faults), running_gateway(ctx.run_dir / "gateway", config) as gateway:
        gateway.wait_models_ready(["fine"])

        async def drive() -> tuple[list[Sample], list[Sample], list[float]]:
            client = HttpClient("127.0.0.1", gateway.port, timeout_s=10)
            send = sender(client, "fine")
            unloaded = await open_loop(send, RATE, ctx.seconds(1.5, 4))
            stop, closed = asyncio.Event(), list[float]()
            slow = [
                asyncio.create_task(
                    slow_client(
                        gateway.port,
                        SLOW_BODY if i % 2 else SLOW_HEADERS,
                        i * BYTE_EVERY_S / CONNECTIONS,
                        stop,
                        closed,
                    )
                )
                for i in range(CONNECTIONS)
            ]
            await asyncio.sleep(BYTE_EVERY_S + 0.5)  # every slow connection is open
            loaded = await open_loop(send, RATE, ctx.seconds(3, 25))
            stop.set()
            await asyncio.gather(*slow)
            await client.close()
            return unloaded, loaded, closed

        unloaded, loaded, closed = run(drive())
    ctx.keep("unloaded", unloaded)
    ctx.keep("loaded", loaded)
    p99 = percentile([s.latency_s for s in loaded if s.ok], 0.99) * 1000
    failed = sum(not s.ok for s in loaded)
    unloaded_p99 = percentile([s.latency_s for s in unloaded if s.ok], 0.99) * 1000
    held = f"{percentile(closed, 0.5):.1f} s median" if closed else "none closed"
    return [
        judged(
            NAME,
            f"normal requests' p99 (unloaded {unloaded_p99:.1f} ms)",
            p99,
            "ms",
            f"< {P99_LIMIT_MS:.0f} ms",
            p99 < P99_LIMIT_MS,
        ),
        judged(NAME, f"normal requests failed of {len(loaded)}", failed, "req", "0", failed == 0),
        Figure(
            NAME,
            "slowloris connections closed by the gateway",
            f"{len(closed)} ({held})",
            "-",
            None,
        ),
        lag_figure(NAME, loaded),
        gateway.log_figure(NAME),
    ]


SCENARIO = Scenario(
    NAME,
    f"{CONNECTIONS} connections sending headers or a body a byte a second, "
    f"{RATE:.0f} req/s of normal requests",
    (9, 35),
    measure,
)
