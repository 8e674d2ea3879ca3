"""The worker's end of its shadow process: starts it, feeds it jobs, restarts it when it dies.

The jobs of each ``FLUSH_S`` are one frame written into a unix socket (the transport's buffer,
then the kernel's), never a wait: past ``MAX_BUFFER`` bytes not yet taken by the process, or
while it is down, a copy is counted ``dropped``. Copies handed over but not yet reported are
counted per pair, so the ones a dying process takes with it are counted ``dropped`` too. The
process is restarted after ``RESTART_S`` (doubling up to ``MAX_RESTART_S`` while it keeps dying
young).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gateway
from gateway.config import GatewayConfig
from gateway.shadow.frames import FrameReader, frame
from gateway.shadow.job import Wire

log = logging.getLogger(__name__)

ROOT = str(Path(gateway.__file__).resolve().parent.parent)
"""The checkout the worker runs: the shadow process imports the same."""
MAX_BUFFER = 4 << 20
"""Bytes of jobs waiting for the shadow process to read them; past it copies are dropped."""
FLUSH_S = 0.02
"""Jobs are written together at most this long after the first of them: one system call (and
one wake-up of the shadow process) for several requests (4 at 200 req/s, 10 at 500). A copy's
result comes that much later, which nothing waits for."""
RESTART_S = 0.1
MAX_RESTART_S = 5.0
STABLE_S = 10.0
"""A process that lived this long was not dying young: the next restart waits RESTART_S."""
STOP_S = 5.0

Pair = tuple[str, str, str]
Report = tuple[dict[tuple[str, str, str, str], int], dict[Pair, list[float]], list[Any]]


class _Link(asyncio.Protocol):
    def __init__(self, on_report: Callable[[Report], None]) -> None:
        self._on_report = on_report
        self._reader = FrameReader()
        self.lost = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        for message in self._reader.feed(data):
            if message[0] == "report":
                self._on_report((message[1], message[2], message[3]))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


class ShadowProcess:
    def __init__(
        self,
        on_report: Callable[[Report], None],
        on_lost: Callable[[dict[Pair, int]], None],
    ) -> None:
        self._on_report = on_report
        self._on_lost = on_lost
        self._config: GatewayConfig | None = None
        self._transport: asyncio.Transport | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self.pending: dict[Pair, int] = {}
        """Copies handed over and not reported yet, by (model, primary, shadow)."""
        self._batch: list[Wire] = []
        self._batch_bytes = 0
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._task is not None

    def configure(self, config: GatewayConfig) -> None:
        """Run the process (if not yet) and route it by ``config``."""
        self._config = config
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._keep_running())
        elif self._transport is not None and not self._transport.is_closing():
            self._transport.write(frame(("config", config)))

    def send(self, job: Wire, size: int, pairs: list[Pair]) -> bool:
        """Hand ``job`` (about ``size`` bytes) over; False (nothing sent) when the process is
        down or behind."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return False
        if transport.get_write_buffer_size() + self._batch_bytes > MAX_BUFFER:
            return False
        if not self._batch:
            asyncio.get_running_loop().call_later(FLUSH_S, self._flush)
        self._batch.append(job)
        self._batch_bytes += size
        pending = self.pending
        for pair in pairs:
            pending[pair] = pending.get(pair, 0) + 1
        return True

    def _flush(self) -> None:
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        transport = self._transport
        if batch and transport is not None and not transport.is_closing():
            transport.write(frame(("jobs", batch)))  # one pickle for all of them

    def reported(self, pair: Pair, count: int) -> None:
        left = self.pending.get(pair, 0) - count
        if left > 0:
            self.pending[pair] = left
        else:
            self.pending.pop(pair, None)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _keep_running(self) -> None:
        delay = RESTART_S
        while True:
            started = time.monotonic()
            try:
                await self._run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("shadow process failed")
            self._lost()
            if time.monotonic() - started > STABLE_S:
                delay = RESTART_S
            log.warning("shadow process gone; restarting in %.1f s", delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RESTART_S)

    def _lost(self) -> None:
        self._transport = None
        self._batch, self._batch_bytes = [], 0
        lost, self.pending = self.pending, {}
        if lost:
            self._on_lost(lost)

    async def _run_once(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._process = await self._spawn(theirs)
        finally:
            theirs.close()
        self.starts += 1
        process = self._process
        try:
            ours.setblocking(False)
            loop = asyncio.get_running_loop()
            link = _Link(self._on_report)
            transport, _ = await loop.create_unix_connection(lambda: link, sock=ours)
            assert self._config is not None
            transport.write(frame(("config", self._config)))
            self._transport = transport
            exited = loop.create_task(process.wait())
            try:
                await asyncio.wait([exited, link.lost], return_when=asyncio.FIRST_COMPLETED)
            finally:
                self._transport = None
                transport.close()
                exited.cancel()
        finally:
            await self._end(process)

    async def _spawn(self, theirs: socket.socket) -> asyncio.subprocess.Process:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # it counts nothing itself: the worker does
        level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
        third_party = self._config.logging.third_party_level if self._config else "warning"
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway.shadow.child",
            str(theirs.fileno()),
            str(os.getpid()),
            str(level),
            third_party,
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            env=env,
        )

    async def _end(self, process: asyncio.subprocess.Process) -> None:
        """The socket is closed: the process exits on its own; it is killed if it does not."""
        try:
            await asyncio.wait_for(process.wait(), STOP_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
