"""``Gateway.apply`` in process, in front of two tiny OIP servers that are always ready: one
reference swapped, readiness kept for unchanged targets (no blip), removed backends drained then
closed, their metric series gone, the config version exported."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from gateway.app import Gateway
from gateway.config import parse_config
from gateway.metrics import RequestRecord

READY = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"


class AlwaysReady:
    """An HTTP server answering 200 to everything; counts its open connections."""

    def __init__(self) -> None:
        self.open = 0
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(READY)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"


async def serving() -> tuple[AlwaysReady, str]:
    server = AlwaysReady()
    return server, await server.start()


async def closed(server: AlwaysReady, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while server.open:
        assert time.monotonic() < deadline, "the removed backend was never closed"
        await asyncio.sleep(0.05)


async def stop_all(gateway: Gateway, servers: tuple[AlwaysReady, ...]) -> None:
    await gateway.stop()
    for server in servers:
        assert server.server is not None
        server.server.close()


def config(a: str, b: str | None, weight: int) -> Any:
    backends: dict[str, Any] = {"a": {"kind": "oip", "url": a, "timeout_s": 0.5}}
    variants = [{"name": "a1", "backend": "a", "version": 1, "weight": weight}]
    if b is not None:
        backends["b"] = {"kind": "oip", "url": b, "timeout_s": 0.5}
        variants.append({"name": "b1", "backend": "b", "version": 1, "weight": 1})
    return parse_config(
        {
            "server": {
                "http": {"host": "127.0.0.1", "port": 0},
                "grpc": None,
                "admin": None,
                "readiness_interval_s": 60,  # one sweep at start: a blip could not heal
            },
            "backends": backends,
            "models": {"m": {"variants": variants}},
        }
    )


def test_apply_swaps_the_table_keeps_readiness_and_drains_removed_backends() -> None:
    async def scenario() -> None:
        (a, a_url), (b, b_url) = await serving(), await serving()
        gateway = Gateway(config(a_url, b_url, 3))
        await gateway.start()
        try:
            deadline = time.monotonic() + 5
            while not gateway.readiness.server_ready():
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            old = gateway.table
            b1 = old.router.model("m").variants["b1"]
            gateway.metrics.finish(RequestRecord("oip_rest", time.perf_counter(), "m", b1), 200)
            assert 'variant="b1"' in gateway.metrics.exposition.render().decode()
            assert b.open == 1

            version = await gateway.apply(config(a_url, None, 5))

            table = gateway.table
            assert version.number == 2
            assert version == table.version
            assert version.digest != old.version.digest
            assert table.backends["a"] is old.backends["a"]  # unchanged: the same client
            assert table.router.model("m").variants["a1"].weight == 5
            assert old.router.model("m").variants["a1"].weight == 3  # the old one is intact
            # No probe has run since: readiness was carried over, not re-learned.
            assert gateway.readiness.server_ready()
            assert gateway.readiness.variant_ready(table.router.model("m").variants["a1"])
            text = gateway.metrics.exposition.render().decode()
            assert 'variant="b1"' not in text
            assert f'gateway_config_version{{digest="{version.digest}"}} 2.0' in text
            # Removed: drained (open for requests routed before the swap), then closed.
            assert b.open == 1
            await closed(b, 0.5 + 1.0 + 2.0)
            assert a.open == 1
        finally:
            await stop_all(gateway, (a, b))

    asyncio.run(scenario())


def _gauge(text: str, name: str, backend: str) -> str | None:
    for line in text.splitlines():
        if line.startswith(f'{name}{{backend="{backend}"}} '):
            return line.split(" ", 1)[1]
    return None


def test_the_adaptive_limits_gauges_follow_the_newest_client_of_each_backend() -> None:
    """A backend replaced by a changed config drains with its old breaker, whose controller no
    longer writes the backend's series; a removed backend's series go once it is closed."""

    async def scenario() -> None:
        (a, a_url), (b, b_url) = await serving(), await serving()
        gateway = Gateway(config(a_url, b_url, 3))
        await gateway.start()
        try:
            text = gateway.metrics.exposition.render().decode()
            for backend in ("a", "b"):
                assert _gauge(text, "gateway_adaptive_concurrency_limit", backend) == "3.0"
                measuring = "gateway_adaptive_concurrency_min_rtt_calculation_active"
                assert _gauge(text, measuring, backend) == "1.0"
                min_rtt = _gauge(text, "gateway_adaptive_concurrency_min_rtt_seconds", backend)
                assert min_rtt == "NaN"
            old_a = gateway.table.backends["a"]
            changed = config(a_url, None, 3)
            changed.backends["a"] = changed.backends["a"].model_copy(update={"timeout_s": 0.4})
            await gateway.apply(changed)
            assert gateway.table.backends["a"] is not old_a
            controller = gateway.breakers[old_a].adaptive
            assert controller is not None
            for _ in range(60):  # the old client's last calls: its minimum is measured
                controller.sample(0.01)
            assert controller.min_rtt == 0.01
            text = gateway.metrics.exposition.render().decode()
            assert _gauge(text, "gateway_adaptive_concurrency_min_rtt_seconds", "a") == "NaN"
            await closed(b, 0.5 + 1.0 + 2.0)
            text = gateway.metrics.exposition.render().decode()
            assert _gauge(text, "gateway_adaptive_concurrency_limit", "b") is None
            assert _gauge(text, "gateway_adaptive_concurrency_limit", "a") == "3.0"
        finally:
            await stop_all(gateway, (a, b))

    asyncio.run(scenario())
