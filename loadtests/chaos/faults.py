"""Backends that fail on purpose, each a real TCP server speaking (or refusing) the Open Inference
Protocol's REST API, as the gateway's ``kind: oip`` backend calls it.

- ``hung``: accepts connections, reads requests, never answers.
- ``reset``: accepts a connection, reads the request, and resets it (RST, no answer).
- ``slow``: answers ``/infer`` after ``latency_ms``, at most ``concurrency`` at a time (the others
  wait their turn, as in a server with that many model workers); readiness and metadata at once.
  ``GET /stats`` says how many inferences it ran and how many were for a client already gone.
- ``trickle``: answers ``/infer`` with a valid head, then the body one byte per ``interval_ms``.

Run one as its own process (``python -m loadtests.chaos.faults slow --port 9000 --latency-ms 50
--concurrency 2``), so that it competes with the gateway for CPU as a real backend would and can
be killed with SIGKILL; :func:`fault_process` wraps that in a :class:`ManagedProcess`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

from deploy.local.process import ManagedProcess, port_open

KINDS = ("hung", "reset", "slow", "trickle")
OUTPUT = {
    "name": "probabilities",
    "datatype": "FP32",
    "shape": [1, 10],
    "data": [0.1] * 10,
}
METADATA = {
    "platform": "chaos",
    "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}],
    "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}],
}


@dataclass
class Request:
    method: str
    path: str
    body: bytes


@dataclass
class Settings:
    kind: str
    latency_s: float = 0.05
    concurrency: int = 2
    interval_s: float = 0.1


@dataclass
class Stats:
    infer: int = 0
    served: int = 0
    wasted: int = 0
    """Inferences run for a client that had gone by the time the answer was ready."""
    active: int = 0
    max_active: int = 0


@dataclass
class FaultServer:
    settings: Settings
    stats: Stats = field(default_factory=Stats)
    _slots: asyncio.Semaphore | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (request := await read_request(reader)) is not None:
                if not await self.answer(request, reader, writer):
                    break
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()

    async def answer(
        self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer one request; False closes the connection."""
        kind = self.settings.kind
        if request.path == "/stats":
            write_json(writer, 200, self.stats.__dict__)
        elif kind == "hung":
            await asyncio.Event().wait()
        elif kind == "reset":
            reset(writer)
            return False
        elif request.method == "GET":
            write_json(writer, 200, {} if request.path.endswith("/ready") else METADATA)
        elif kind == "trickle":
            await self.trickle(request, writer)
        else:
            await self.infer(request, reader, writer)
        await writer.drain()
        return True

    async def infer(
        self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.settings.concurrency)
        async with self._slots:
            self.stats.infer += 1
            self.stats.active += 1
            self.stats.max_active = max(self.stats.max_active, self.stats.active)
            try:
                await asyncio.sleep(self.settings.latency_s)
            finally:
                self.stats.active -= 1
            if reader.at_eof() or writer.is_closing():
                self.stats.wasted += 1
            else:
                self.stats.served += 1
        write_json(writer, 200, reply_doc(request.path))

    async def trickle(self, request: Request, writer: asyncio.StreamWriter) -> None:
        self.stats.infer += 1
        body = json.dumps(reply_doc(request.path)).encode()
        writer.write(head(200, len(body)))
        for index in range(len(body)):
            writer.write(body[index : index + 1])
            await writer.drain()
            await asyncio.sleep(self.settings.interval_s)
        self.stats.served += 1


def reply_doc(path: str) -> dict[str, object]:
    parts = path.strip("/").split("/")  # v2 models <m> [versions <v>] infer
    model = parts[2] if len(parts) > 2 else "model"
    version = parts[4] if len(parts) > 5 and parts[3] == "versions" else "1"
    return {"model_name": model, "model_version": version, "outputs": [OUTPUT]}


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    line, *fields = raw.decode("latin-1").split("\r\n")
    method, path, _ = line.split(" ", 2)
    length = 0
    for item in fields:
        name, _, value = item.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return Request(method, path, await reader.readexactly(length))


def head(status: int, length: int) -> bytes:
    return (
        f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n\r\n"
    ).encode()


def write_json(writer: asyncio.StreamWriter, status: int, doc: object) -> None:
    body = json.dumps(doc).encode()
    writer.write(head(status, len(body)) + body)


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST: SO_LINGER on, zero seconds."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def serve(settings: Settings, port: int) -> None:
    server = FaultServer(settings)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", port, backlog=1024)
    print(f"{settings.kind} fault server on 127.0.0.1:{port}", flush=True)
    async with listener:
        await listener.serve_forever()


def fault_process(
    run_dir: Path,
    kind: str,
    port: int,
    latency_ms: float = 50,
    concurrency: int = 2,
    interval_ms: float = 100,
) -> ManagedProcess:
    """A not-yet-started fault server in its own process; ready once its port accepts."""
    return ManagedProcess(
        name=f"fault-{kind}-{port}",
        argv=[
            sys.executable,
            "-m",
            "loadtests.chaos.faults",
            kind,
            f"--port={port}",
            f"--latency-ms={latency_ms}",
            f"--concurrency={concurrency}",
            f"--interval-ms={interval_ms}",
        ],
        run_dir=run_dir,
        ready=lambda: port_open("127.0.0.1", port),
        cwd=Path(__file__).resolve().parents[2],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loadtests.chaos.faults", description=__doc__)
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--interval-ms", type=float, default=100)
    args = parser.parse_args(argv)
    settings = Settings(
        args.kind, args.latency_ms / 1000, args.concurrency, args.interval_ms / 1000
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(settings, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
