"""The server's lifetime: both APIs up, READY printed, then a graceful stop on SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import signal
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from deploy.local.tfserving_standin.core import ServerCore
from deploy.local.tfserving_standin.grpc_server import start_grpc
from deploy.local.tfserving_standin.identity import log
from deploy.local.tfserving_standin.metrics import Metrics
from deploy.local.tfserving_standin.rest_api import RestApi
from deploy.local.tfserving_standin.rest_server import RestServer, start_rest


async def serve(
    core: ServerCore, metrics: Metrics, args: argparse.Namespace, metrics_path: str | None
) -> int:
    """Listen on both ports, print READY, and run until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    host = args.standin_bind_address
    grpc_server, health_servicer, grpc_port = start_grpc(
        core, metrics, host, args.port, args.grpc_max_threads
    )
    pool = ThreadPoolExecutor(max_workers=args.rest_api_num_threads, thread_name_prefix="rest")
    runner: web.AppRunner | None = None
    rest_port = 0
    try:
        if args.rest_api_port:
            api = RestApi(core, metrics, metrics_path)
            timeout_s = (
                args.rest_api_timeout_in_ms / 1000 if args.rest_api_timeout_in_ms > 0 else None
            )
            runner, rest_port = await start_rest(
                RestServer(api, pool, timeout_s), host, args.rest_api_port
            )
        log.info("gRPC on %s port %d, REST on port %d", host, grpc_port, rest_port)
        print(f"READY grpc={grpc_port} rest={rest_port}", flush=True)
        await stop.wait()
        log.info("Stopping")
    finally:
        health_servicer.enter_graceful_shutdown()
        stopped = grpc_server.stop(grace=1.0)
        if runner is not None:
            await runner.cleanup()
        pool.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(stopped.wait, 2.0)
    return 0
