"""Processes: one worker runs in the caller's process; several are supervised child processes.

Each worker owns one event loop (uvloop) and its own SO_REUSEPORT listening socket, so the kernel
spreads connections across workers (a shared accept queue lets one worker take them all).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

import uvloop

from gateway.app import Gateway
from gateway.config import GatewayConfig
from gateway.memory import keep_large_buffers_in_heap

log = logging.getLogger(__name__)

RESTART_BACKOFF_S = 1.0
READY_TIMEOUT_S = 60.0


async def serve(config: GatewayConfig, reuse_port: bool, ready: Connection | None = None) -> None:
    """Run one gateway until SIGTERM or SIGINT, then stop gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # Start-up allocates everything the worker keeps (routes for every model, codecs, servers):
    # collecting in the middle of it is wasted work, and freezing the result keeps later
    # collections from walking it again.
    gc.disable()
    try:
        gateway = Gateway(config)
        await gateway.start(reuse_port=reuse_port)
    finally:
        gc.freeze()
        gc.enable()
    if ready is not None:
        ready.send(gateway.http_port)
        ready.close()
    else:
        _announce(config, 1, gateway.http_port, gateway.grpc_port)
    await stop.wait()
    log.info("stopping: letting in-flight requests finish")
    await gateway.stop()


def run_worker(config: GatewayConfig, ready: Connection | None, reuse_port: bool) -> None:
    keep_large_buffers_in_heap()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(config, reuse_port, ready))


def _worker_entry(config: GatewayConfig, ready: Connection, log_level: int) -> None:
    logging.basicConfig(level=log_level, format=f"%(asctime)s [worker {os.getpid()}] %(message)s")
    run_worker(config, ready, reuse_port=True)


def _announce(
    config: GatewayConfig, workers: int, http_port: int | None = None, grpc_port: int | None = None
) -> None:
    """One line once every worker listens, with the ports actually bound (port 0 = any)."""
    http, grpc = config.server.http, config.server.grpc
    listening = f"http://{http.host}:{http_port if http_port is not None else http.port}"
    if grpc is not None:
        listening += f", grpc {grpc.host}:{grpc_port if grpc_port is not None else grpc.port}"
    print(f"gateway ready: {listening} ({workers} worker(s))", flush=True)


def run(config: GatewayConfig) -> int:
    if config.server.workers == 1:
        run_worker(config, None, reuse_port=False)
        return 0
    return Supervisor(config).run()


class Supervisor:
    """Starts ``server.workers`` workers, restarts any that die, stops them all on a signal."""

    def __init__(self, config: GatewayConfig) -> None:
        self._config = config
        self._context = multiprocessing.get_context("spawn")
        self._workers: dict[int, BaseProcess] = {}
        self._stopping = False
        self._reserved: list[socket.socket] = []

    def _resolve_port(self) -> GatewayConfig:
        """Port 0 means any free port: reserve one here so every worker binds the same one."""
        server = self._config.server
        update = {}
        for key, listen in (("http", server.http), ("grpc", server.grpc)):
            if listen is None or listen.port != 0:
                continue
            sock = socket.socket(socket.AF_INET6 if ":" in listen.host else socket.AF_INET)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((listen.host, 0))
            self._reserved.append(sock)
            update[key] = listen.model_copy(update={"port": sock.getsockname()[1]})
        if not update:
            return self._config
        return self._config.model_copy(update={"server": server.model_copy(update=update)})

    def _spawn(self, config: GatewayConfig) -> Connection:
        receiver, sender = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_worker_entry,
            args=(config, sender, logging.getLogger().level),
            name="gateway-worker",
        )
        process.start()
        sender.close()
        assert process.pid is not None
        self._workers[process.pid] = process
        return receiver

    def _on_signal(self, signum: int, frame: object) -> None:
        self._stopping = True

    def run(self) -> int:
        metrics_dir = tempfile.mkdtemp(prefix="gateway-metrics-")
        # Must be set before a worker imports prometheus_client.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        try:
            config = self._resolve_port()
            pipes = [self._spawn(config) for _ in range(config.server.workers)]
            if not self._await_ready(pipes):
                return 1
            _announce(config, config.server.workers)
            self._supervise(config)
            return 0
        finally:
            self._stop_all()
            shutil.rmtree(metrics_dir, ignore_errors=True)

    def _await_ready(self, pipes: list[Connection]) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_S
        pending = list(pipes)
        while pending and not self._stopping:
            for pipe in wait(pending, timeout=max(0.0, deadline - time.monotonic())):
                assert isinstance(pipe, Connection)
                try:
                    pipe.recv()
                except EOFError:
                    log.error("a worker exited during start-up")
                    return False
                pending.remove(pipe)
            if time.monotonic() > deadline:
                log.error("workers not ready after %.0fs", READY_TIMEOUT_S)
                return False
        return not pending

    def _supervise(self, config: GatewayConfig) -> None:
        from prometheus_client import multiprocess

        while not self._stopping:
            sentinels = [p.sentinel for p in self._workers.values()]
            wait(sentinels, timeout=0.5)
            for pid, process in list(self._workers.items()):
                if process.is_alive() or self._stopping:
                    continue
                log.error("worker %d exited with %s; restarting", pid, process.exitcode)
                multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
                del self._workers[pid]
                time.sleep(RESTART_BACKOFF_S)
                self._spawn(config).close()

    def _stop_all(self) -> None:
        for process in self._workers.values():
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        grace = self._config.server.graceful_shutdown_s + 5
        deadline = time.monotonic() + grace
        for process in self._workers.values():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
        self._workers.clear()
        for sock in self._reserved:
            sock.close()
