"""``gateway serve``: one worker in this process, or several under a supervisor.

Exit codes: 0 after SIGTERM or SIGINT; 1 when the gateway cannot start (a port in use: one log
line says which and why) or when a worker keeps dying (``server.worker_restart``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from gateway.app import StartupError
from gateway.config import GatewayConfig
from gateway.logs import quiet_libraries
from gateway.supervisor import Supervisor
from gateway.worker import run_worker, worker_entry

log = logging.getLogger(__name__)


def run(config: GatewayConfig, config_path: Path | None = None) -> int:
    """``config_path`` (the file ``config`` came from) turns on the control plane: reloads,
    the watcher and the admin API."""
    quiet_libraries(config.logging.third_party_level)
    if config.server.workers > 1:
        return Supervisor(config, worker_entry, config_path).run()
    try:
        run_worker(config, None, reuse_port=False, config_path=config_path)
    except StartupError as error:
        log.error("%s", error)
        return 1
    return 0
