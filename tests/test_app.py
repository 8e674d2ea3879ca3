"""The composition root's start and stop, in process: a start that fails half-way leaves nothing
running (probes, listeners, backend connections)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from gateway.app import Gateway, StartupError
from gateway.config import parse_config
from tests.support.offline_gateway import offline_config

READY = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"


def test_a_failed_bind_stops_everything_already_started():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()

    async def scenario() -> None:
        handlers: set[asyncio.Task[object] | None] = set()
        opened: list[int] = []
        closed: list[int] = []

        async def backend(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            handlers.add(asyncio.current_task())
            opened.append(1)
            try:
                while True:  # readiness probes, on a kept-alive connection
                    await reader.readuntil(b"\r\n\r\n")
                    writer.write(READY)
            except asyncio.IncompleteReadError:  # the gateway closed it
                closed.append(1)
                writer.close()

        server = await asyncio.start_server(backend, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        config = parse_config(
            {
                "server": {
                    "http": {"host": "127.0.0.1", "port": 0},
                    "grpc": {"host": "127.0.0.1", "port": taken.getsockname()[1]},
                },
                "backends": {"oip": {"kind": "oip", "url": f"http://127.0.0.1:{port}"}},
                "models": {
                    "m": {"variants": [{"name": "a", "backend": "oip", "version": 1, "weight": 1}]}
                },
            }
        )
        gateway = Gateway(config)
        with pytest.raises(StartupError, match=r"cannot listen for gRPC on 127\.0\.0\.1:"):
            await gateway.start()
        http_port = gateway.http_port
        assert http_port is not None  # HTTP had started before gRPC failed
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", http_port)
        # No probe loop, no HTTP server: only this test and the fake backend's handlers run.
        assert asyncio.all_tasks() - handlers == {asyncio.current_task()}
        # The probes' pooled connections to the backend are closed.
        for _ in range(500):
            if len(closed) == len(opened):
                break
            await asyncio.sleep(0.01)
        assert len(closed) == len(opened)  # (the probe usually connects before gRPC fails)
        await gateway.stop()  # stopping again is harmless
        server.close()
        await server.wait_closed()

    try:
        asyncio.run(scenario())
    finally:
        taken.close()


def test_stop_before_start_is_harmless():
    asyncio.run(Gateway(parse_config(offline_config())).stop())
