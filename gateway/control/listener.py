"""The admin API's own HTTP listener (``server.admin``), in whatever event loop runs the plane."""

from __future__ import annotations

import asyncio
import logging
import socket

import uvicorn

from gateway.app import EmbeddedUvicorn, StartupError, listen_socket
from gateway.config import AdminConfig
from gateway.control.admin_app import AdminApp
from gateway.control.auth import AdminToken
from gateway.control.plane import ControlPlane

log = logging.getLogger(__name__)


class AdminListener:
    def __init__(self, plane: ControlPlane, admin: AdminConfig) -> None:
        self._admin = admin
        self._token = AdminToken(admin.token_file)
        self._app = AdminApp(plane, self._token)
        self._server: EmbeddedUvicorn | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None
        self.port: int | None = None

    def has_token(self) -> bool:
        return self._token.expected() is not None

    def bind(self) -> None:
        """Take the port now (a port in use fails the start before anything else listens)."""
        if self._socket is None:
            self._socket = listen_socket(
                self._admin.host, self._admin.port, reuse_port=False, what="admin"
            )
            self.port = int(self._socket.getsockname()[1])

    async def start(self) -> None:
        self.bind()
        sock = self._socket
        assert sock is not None
        config = uvicorn.Config(
            self._app,
            http="h11",
            ws="none",
            lifespan="off",
            access_log=False,
            log_level="warning",
            server_header=False,
            proxy_headers=False,
        )
        self._server = EmbeddedUvicorn(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                sock.close()
                raise StartupError(f"admin listener did not start: {self._task.exception()!r}")
            await asyncio.sleep(0.01)
        if self._token.expected() is None:
            log.warning(
                "admin API on %s:%d refuses every request: no token (set "
                "GATEWAY_ADMIN_TOKEN or server.admin.token_file)",
                self._admin.host,
                self.port,
            )
        else:
            log.info("admin API on %s:%d", self._admin.host, self.port)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
            self._server = self._task = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
