"""The supervisor's control plane: an event loop on a thread of its own, running the plane,
its admin listener and watcher, and pushing every change to the workers through their pipes
(the supervisor's main thread keeps watching the workers)."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

from gateway.app import StartupError
from gateway.config import GatewayConfig
from gateway.control.local import LocalControl
from gateway.control.plane import ControlPlane
from gateway.control.workers import PipeWorkers

log = logging.getLogger(__name__)

START_TIMEOUT_S = 30.0


class ControlThread:
    def __init__(
        self, path: Path, config: GatewayConfig, workers: PipeWorkers, file_config: GatewayConfig
    ) -> None:
        """``config`` with the ports the supervisor resolved; ``file_config`` as loaded."""
        self._plane = ControlPlane(path, config, workers, file_server=file_config.server)
        self._loop = asyncio.new_event_loop()
        self._control = LocalControl(self._plane)
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="gateway-control", daemon=True)

    def start(self) -> bool:
        """Listen; False (logged) when the admin listener cannot start."""
        self._thread.start()
        self._started.wait(START_TIMEOUT_S)
        if self._error is not None:
            log.error("%s", self._error)
            return False
        return self._started.is_set()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._control.start(signals=False))
        except (StartupError, OSError) as error:
            self._error = error
            self._started.set()
            return
        self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._control.stop())
        self._loop.close()

    def sighup(self) -> None:
        self._loop.call_soon_threadsafe(self._control.sighup)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
