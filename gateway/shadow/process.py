"""The shadow process: one per worker, its child, doing all of that worker's shadow work.

Started as ``python -m gateway.shadow.child FD PARENT_PID ...`` (see there); FD is its end of
a unix socket pair with the worker (see :mod:`gateway.shadow.frames`). It builds its own
backends and router from the config frames (as a worker does, and again on every change),
runs the :class:`Mirror` as a worker used to (the same pools, bounds, deadlines and
comparisons) and reports the outcomes and the diverging examples back to the worker every
``REPORT_S``, which counts them in its own metrics and ring: ``/metrics`` and the admin API see
them as the worker's own.

It never outlives its worker: the kernel sends it SIGKILL when the worker dies
(``PR_SET_PDEATHSIG``), and it exits when the socket closes. It ignores SIGTERM and SIGINT: a
signal to the process group is for the worker, which then closes the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections import deque
from typing import cast

import uvloop

from gateway.backends import Backend, create_backend
from gateway.config import AnyBackendConfig, GatewayConfig
from gateway.logs import quiet_libraries
from gateway.memory import keep_large_buffers_in_heap
from gateway.metadata import MetadataCache
from gateway.routing.table import RoutingTable, first_table, next_table
from gateway.shadow.frames import FrameReader, frame
from gateway.shadow.job import Job, decode_job, outgoing_of, rebuilt_request, rebuilt_response
from gateway.shadow.mirror import Mirror
from gateway.shadow.plan import plans_from
from gateway.shadow.ring import Example, ExampleRing

log = logging.getLogger(__name__)

REPORT_S = 0.05
"""How often outcomes go back to the worker (when there are any)."""
DRAIN_SLACK_S = 1.0

Counts = dict[tuple[str, str, str, str], int]
Diffs = dict[tuple[str, str, str], list[float]]


class Tally:
    """The outcomes since the last report."""

    def __init__(self) -> None:
        self.counts: Counts = {}
        self.diffs: Diffs = {}

    def shadow_result(self, model: str, primary: str, shadow: str, result: str) -> None:
        key = (model, primary, shadow, result)
        self.counts[key] = self.counts.get(key, 0) + 1

    def shadow_diff(self, model: str, primary: str, shadow: str, value: float) -> None:
        self.diffs.setdefault((model, primary, shadow), []).append(value)

    def take(self) -> tuple[Counts, Diffs]:
        counts, diffs = self.counts, self.diffs
        self.counts, self.diffs = {}, {}
        return counts, diffs


class Outbox(ExampleRing):
    """The examples since the last report: the worker keeps the ring."""

    def __init__(self) -> None:
        super().__init__(0)
        self.examples: list[tuple[str, Example]] = []

    def add(self, model: str, example: Example) -> None:
        self.examples.append((model, example))

    def recent(self, model: str) -> list[Example]:
        return []


class ShadowEngine(asyncio.Protocol):
    def __init__(self, done: asyncio.Event) -> None:
        self._done = done
        self._reader = FrameReader()
        self._transport: asyncio.Transport | None = None
        self._metadata = MetadataCache()
        self._table: RoutingTable | None = None
        self._limit = 0
        self.tally = Tally()
        self.outbox = Outbox()
        self.mirror = Mirror(self.tally, draw=lambda: 0.0)  # the worker drew the sample
        self.mirror.ring = self.outbox
        self._configs: deque[GatewayConfig] = deque()
        self._waiting: deque[Job] = deque()
        """Jobs that came while a config was being applied: they run on the new one."""
        self._applying: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self._done.set()

    def data_received(self, data: bytes) -> None:
        for message in self._reader.feed(data):
            kind = message[0]
            if kind == "jobs":
                for wire in message[1]:
                    job = decode_job(wire)
                    if self._applying is None:
                        self._run(job)
                    else:
                        self._waiting.append(job)
            elif kind == "config":
                self._configs.append(message[1])
                if self._applying is None:
                    self._applying = asyncio.get_running_loop().create_task(self._apply())

    async def _apply(self) -> None:
        try:
            while self._configs:
                await self._configure(self._configs.popleft())
        except Exception:
            log.exception("shadow process: applying a config failed")
        finally:
            self._applying = None
            while self._waiting and self._applying is None:
                self._run(self._waiting.popleft())

    def _create(self, name: str, config: AnyBackendConfig) -> Backend:
        return create_backend(name, config, self._limit, self._metadata)

    async def _configure(self, config: GatewayConfig) -> None:
        self._limit = config.server.max_request_bytes
        if self._table is None:
            table = first_table(config, self._create)
            for backend in table.backends.values():
                await backend.start()
            removed: tuple[Backend, ...] = ()
        else:
            change = next_table(self._table, config, self._create)
            for backend in change.added:
                await backend.start()
            table, removed = change.table, change.removed
        self._table = table
        self.mirror.apply(plans_from(config, table.router))
        for backend in removed:
            task = asyncio.get_running_loop().create_task(self._drain(backend))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _drain(self, backend: Backend) -> None:
        await asyncio.sleep(backend.timeout_s + DRAIN_SLACK_S)
        await backend.close()

    def _run(self, job: Job) -> None:
        table = self._table
        plan = self.mirror.plan(job.model)
        primary = None
        if table is not None and plan is not None:
            with contextlib.suppress(KeyError):
                primary = table.router.model(job.model).variants.get(job.primary)
        if plan is None:
            return  # shadowing of the model was just turned off
        if primary is None:
            # The worker routed on a config this process has not got (or no longer has).
            for target in plan.shadows:
                if target.name != job.primary:
                    self.tally.shadow_result(job.model, job.primary, target.name, "dropped")
            return
        request = rebuilt_request(job, self._limit)
        response = rebuilt_response(job, primary.backend.name)
        self.mirror.offer(request, primary, response, None, outgoing_of(job))

    def report(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if not (self.tally.counts or self.tally.diffs or self.outbox.examples):
            return
        counts, diffs = self.tally.take()
        examples, self.outbox.examples = self.outbox.examples, []
        transport.write(frame(("report", counts, diffs, examples)))

    async def close(self) -> None:
        await self.mirror.close()
        for task in list(self._tasks):
            task.cancel()
        if self._table is not None:
            for backend in self._table.backends.values():
                with contextlib.suppress(Exception):
                    await backend.close()


async def serve(fd: int) -> None:
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)
    engine = ShadowEngine(done)
    transport, _ = await loop.create_unix_connection(lambda: engine, sock=sock)
    try:
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), REPORT_S)
            engine.report()
    finally:
        transport.close()
        await engine.close()


def main(argv: list[str]) -> None:
    """``FD LOG_LEVEL THIRD_PARTY_LEVEL``"""
    fd = int(argv[0])
    logging.basicConfig(level=argv[1], format=f"%(asctime)s [shadow {os.getpid()}] %(message)s")
    quiet_libraries(argv[2])
    keep_large_buffers_in_heap()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(fd))
