"""One worker: a gateway in its own event loop (uvloop) until SIGTERM or SIGINT.

With several workers each is a child process of the supervisor with its own SO_REUSEPORT
listening socket, so the kernel spreads connections across workers (a shared accept queue lets
one worker take them all).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
from multiprocessing.connection import Connection
from pathlib import Path

import uvloop

from gateway.app import Gateway, StartupError
from gateway.config import GatewayConfig
from gateway.control.local import LocalControl
from gateway.control.plane import ControlPlane
from gateway.control.workers import ControlChannel, LocalWorker
from gateway.logs import quiet_libraries
from gateway.memory import keep_large_buffers_in_heap

log = logging.getLogger(__name__)

STARTUP_FAILED = 3
"""A worker's exit code when it could not start (it has logged why)."""


async def serve(
    config: GatewayConfig,
    reuse_port: bool,
    ready: Connection | None = None,
    control: Connection | None = None,
    config_path: Path | None = None,
    config_number: int = 1,
) -> None:
    """Run one gateway until SIGTERM or SIGINT, then stop gracefully.

    Under a supervisor, ``control`` is the pipe config changes come through; alone, with the
    ``config_path`` it was loaded from, the worker runs the control plane (and admin API) too.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if control is not None:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the supervisor reloads
    # Start-up allocates everything the worker keeps (routes for every model, codecs, servers):
    # collecting in the middle of it is wasted work, and freezing the result keeps later
    # collections from walking it again.
    gc.disable()
    plane = None
    try:
        gateway = Gateway(config, config_number=config_number)
        if control is None and config_path is not None:
            plane = LocalControl(ControlPlane(config_path, config, LocalWorker(gateway)))
            plane.bind()
        try:
            await gateway.start(reuse_port=reuse_port)
        except BaseException:
            if plane is not None:
                await plane.stop()  # the admin port it took
            raise
    finally:
        gc.freeze()
        gc.enable()
    channel = ControlChannel(control, gateway) if control is not None else None
    if plane is not None:
        try:
            await plane.start()
        except BaseException:
            await plane.stop()
            await gateway.stop()
            raise
    if ready is not None:
        ready.send(gateway.http_port)
        ready.close()
    else:
        announce(config, 1, gateway.http_port, gateway.grpc_port)
    await stop.wait()
    log.info("stopping: letting in-flight requests finish")
    if plane is not None:
        await plane.stop()
    if channel is not None:
        channel.close()
    await gateway.stop()


def run_worker(
    config: GatewayConfig,
    ready: Connection | None,
    reuse_port: bool,
    control: Connection | None = None,
    config_path: Path | None = None,
    config_number: int = 1,
) -> None:
    keep_large_buffers_in_heap()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(config, reuse_port, ready, control, config_path, config_number))


def worker_entry(
    config: GatewayConfig,
    ready: Connection,
    log_level: int,
    control: Connection | None = None,
    config_number: int = 1,
) -> None:
    logging.basicConfig(level=log_level, format=f"%(asctime)s [worker {os.getpid()}] %(message)s")
    quiet_libraries(config.logging.third_party_level)
    try:
        run_worker(config, ready, True, control, None, config_number)
    except StartupError as error:
        log.error("%s", error)
        sys.exit(STARTUP_FAILED)


def announce(
    config: GatewayConfig, workers: int, http_port: int | None = None, grpc_port: int | None = None
) -> None:
    """One line once every worker listens, with the ports actually bound (port 0 = any)."""
    http, grpc = config.server.http, config.server.grpc
    listening = f"http://{http.host}:{http_port if http_port is not None else http.port}"
    if grpc is not None:
        listening += f", grpc {grpc.host}:{grpc_port if grpc_port is not None else grpc.port}"
    print(f"gateway ready: {listening} ({workers} worker(s))", flush=True)
