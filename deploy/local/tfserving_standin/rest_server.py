"""The aiohttp front of the REST API: requests run on a fixed pool, within a time limit."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from deploy.local.tfserving_standin.errors import Code, http_status
from deploy.local.tfserving_standin.identity import SERVER_HEADER
from deploy.local.tfserving_standin.limits import MAX_MESSAGE_BYTES
from deploy.local.tfserving_standin.rest_api import RestApi, RestReply
from deploy.local.tfserving_standin.rest_bodies import error_body
from deploy.local.tfserving_standin.rest_routes import REST_PATH

JSON_HEADERS = {"Content-Type": "application/json", **SERVER_HEADER}
METRICS_HEADERS = {"Content-Type": "text/plain", **SERVER_HEADER}


class RestServer:
    """Serves :class:`RestApi`, and the Prometheus metrics at their configured path."""

    def __init__(self, api: RestApi, pool: ThreadPoolExecutor, timeout_s: float | None) -> None:
        self._api = api
        self._pool = pool
        self._timeout_s = timeout_s

    async def handle(self, request: web.Request) -> web.Response:
        path = request.rel_url.raw_path
        metrics = self._api.metrics_text(path)
        if metrics is not None:
            return web.Response(body=metrics.encode(), headers=METRICS_HEADERS)
        if not REST_PATH.fullmatch(path):
            return web.Response(status=404, text="Not Found", headers=SERVER_HEADER)
        body = await request.read()
        work = asyncio.get_running_loop().run_in_executor(
            self._pool, self._api.process, request.method, path, body
        )
        try:
            reply = await asyncio.wait_for(work, self._timeout_s)
        except TimeoutError:
            reply = RestReply(http_status(Code.DEADLINE_EXCEEDED), error_body("Deadline Exceeded"))
        return web.Response(status=reply.status, body=reply.body.encode(), headers=JSON_HEADERS)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_MESSAGE_BYTES)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


async def start_rest(server: RestServer, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Listen on host:port (port 0: any free one); the bound port is returned."""
    runner = web.AppRunner(server.app(), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host=host, port=port)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1] if runner.addresses else port
    return runner, int(bound)
