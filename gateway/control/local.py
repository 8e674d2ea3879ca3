"""A control plane with its admin listener, watcher and SIGHUP handler, in the running loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Coroutine
from typing import Any

from gateway.app import StartupError
from gateway.config import ConfigError
from gateway.control.listener import AdminListener
from gateway.control.plane import ControlPlane
from gateway.control.store import StoreError

log = logging.getLogger(__name__)


class LocalControl:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        admin = plane.config.server.admin
        self.listener = AdminListener(plane, admin) if admin is not None else None
        self._tasks: set[asyncio.Task[object]] = set()

    def bind(self) -> None:
        """Take the admin port before the gateway listens (StartupError if it is in use).

        Without a token the admin API could only refuse: then a port in use is a warning, and
        the gateway runs without it (several gateways on one host with the default config)."""
        if self.listener is None:
            return
        try:
            self.listener.bind()
        except StartupError as error:
            if self.listener.has_token():
                raise
            log.warning("%s; no admin API (it has no token either)", error)
            self.listener = None

    async def start(self, signals: bool = True) -> None:
        """Listen (admin API), watch the files, and reload on SIGHUP (``signals``: this thread
        is the main one)."""
        self.bind()
        if self.listener is not None:
            await self.listener.start()
        interval = self.plane.config.server.watch_interval_s
        if interval is not None:
            self._spawn(self.plane.watch(interval))
        if signals:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.sighup)

    def sighup(self) -> None:
        self._spawn(self._reload("SIGHUP"))

    async def _reload(self, reason: str) -> None:
        try:
            await self.plane.reload(reason)
        except (ConfigError, StoreError) as error:
            log.error("not reloaded (%s): %s", reason, error)
        except Exception:
            log.exception("reload (%s) failed", reason)

    def _spawn(self, coroutine: Coroutine[Any, Any, object]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.listener is not None:
            await self.listener.stop()
