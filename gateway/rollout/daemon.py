"""``gateway rollout controller``: the controller's loop and its HTTP API in one process.

One controller acts on a state directory at a time (a lock file); a second one started on the
same directory exits with a message. SIGTERM or Ctrl-C stops it between two evaluations: the
state on disk is always whole (each save replaces the file atomically).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

from gateway.rollout.admin_client import AdminClient
from gateway.rollout.controller import Controller
from gateway.rollout.plan import Metrics
from gateway.rollout.server import RolloutServer
from gateway.rollout.store import StateStore

log = logging.getLogger("gateway.rollout")


@dataclass(frozen=True)
class DaemonOptions:
    state_dir: Path
    admin_url: str
    host: str = "127.0.0.1"
    port: int = 8003
    prometheus: str | None = None
    scrape: tuple[str, ...] = ()
    token_file: Path | None = None
    tick_s: float = 1.0
    sample_every_s: float = 10.0
    """How often the models asked for analyses are scraped (without Prometheus)."""


def read_token(token_file: Path | None) -> str | None:
    """GATEWAY_ADMIN_TOKEN, else the first line of ``token_file``."""
    token = os.environ.get("GATEWAY_ADMIN_TOKEN", "").strip()
    if not token and token_file is not None:
        token = token_file.read_text().strip()
    return token or None


def run(options: DaemonOptions, stop: threading.Event | None = None) -> int:
    stop = stop or threading.Event()
    token = read_token(options.token_file)
    store = StateStore(options.state_dir)
    store.lock()
    metrics = Metrics(prometheus=options.prometheus, scrape=options.scrape)
    admin = AdminClient(options.admin_url, token)
    controller = Controller(store, admin, metrics, sample_every_s=options.sample_every_s)
    server = RolloutServer((options.host, options.port), controller, token)
    server.serve_in_thread()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    where = options.prometheus or ", ".join(options.scrape) or "the plans' metrics"
    log.info(
        "rollout controller on http://%s:%d, admin API %s, metrics from %s, state in %s%s",
        options.host, server.port, options.admin_url, where, options.state_dir,
        "" if token else " (no admin token: every change is refused until one is set)",
    )  # fmt: skip
    try:
        while not stop.wait(options.tick_s):
            controller.tick()
    finally:
        server.shutdown()
        server.server_close()
        store.unlock()
    return 0
