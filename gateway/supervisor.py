"""Several workers: start them, replace any that dies (with backoff), stop them all on a signal.

A worker that dies is replaced after ``server.worker_restart.backoff_s``; one that dies again
within ``quick_exit_s`` of being started waits twice as long (up to ``max_backoff_s``), and after
``max_quick_exits`` such exits in a row the supervisor stops the others and exits 1, so that a
worker that cannot run (a port taken by another program, memory it can never get) ends in an
exit its own supervisor sees, not in a restart every second forever. With the defaults (1 s,
30 s, 10 s, 5) that takes about 1 + 2 + 4 + 8 + 16 = 31 s plus five start-ups.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path

from gateway.config import GatewayConfig, WorkerRestart
from gateway.control.thread import ControlThread
from gateway.control.workers import PipeWorkers
from gateway.worker import announce

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 60.0
POLL_S = 0.5


@dataclass
class _Slot:
    """One of the ``server.workers`` places, and the process in it (if any)."""

    index: int
    process: BaseProcess | None = None
    ready: Connection | None = None  # until the worker reports it listens
    started: float = 0.0
    quick_exits: int = 0
    restart_at: float | None = None


def restart_delay(policy: WorkerRestart, quick_exits: int) -> float:
    """Seconds before the next start of a worker that has exited ``quick_exits`` times quickly."""
    return float(min(policy.backoff_s * 2**quick_exits, policy.max_backoff_s))


WorkerEntry = Callable[[GatewayConfig, Connection, int, Connection, int], None]
"""What a worker process runs: the config, the pipe to report readiness on, the log level, the
control pipe (config changes in, acknowledgements out) and the config's version number."""


class Supervisor:
    def __init__(
        self, config: GatewayConfig, entry: WorkerEntry, config_path: Path | None = None
    ) -> None:
        self._config = config
        self._entry = entry
        self._config_path = config_path
        self._workers: PipeWorkers | None = None
        self._control: ControlThread | None = None
        self._policy = config.server.worker_restart
        self._context = multiprocessing.get_context("spawn")
        self._slots = [_Slot(index) for index in range(config.server.workers)]
        self._stopping = False
        # SIGTERM must reach the workers at once (their readiness turns 503 first, within
        # drain_s): the handler writes here to end the wait on the workers it interrupts.
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_write, False)
        self._reserved: list[socket.socket] = []

    def run(self) -> int:
        metrics_dir = tempfile.mkdtemp(prefix="gateway-metrics-")
        # Must be set before a worker imports prometheus_client.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        try:
            config = self._resolve_port()
            self._workers = PipeWorkers(config, 1)
            if self._config_path is not None:
                self._control = ControlThread(
                    self._config_path, config, self._workers, self._config
                )
                signal.signal(signal.SIGHUP, lambda signum, frame: self._control_reload())
                if not self._control.start():
                    return 1
            for slot in self._slots:
                self._spawn(slot, config)
            if not self._await_ready():
                return 1
            announce(config, config.server.workers)
            return self._supervise(config)
        finally:
            self._signal_all()  # first: the workers drain while the control plane stops
            if self._control is not None:
                self._control.stop()
            self._stop_all()
            shutil.rmtree(metrics_dir, ignore_errors=True)
            os.close(self._wake_read)
            os.close(self._wake_write)

    def _control_reload(self) -> None:
        if self._control is not None:
            self._control.sighup()

    def _on_signal(self, signum: int, frame: object) -> None:
        self._stopping = True
        with contextlib.suppress(BlockingIOError):  # a wake-up is already pending
            os.write(self._wake_write, b"\0")

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

    def _spawn(self, slot: _Slot, config: GatewayConfig) -> None:
        receiver, sender = self._context.Pipe(duplex=False)
        ours, theirs = self._context.Pipe(duplex=True)
        number = 1
        if self._workers is not None:
            # Registered with the config current now: any later change reaches it by the pipe.
            config, number = self._workers.register(slot.index, ours)
        process = self._context.Process(
            target=self._entry,
            args=(config, sender, logging.getLogger().level, theirs, number),
            name=f"gateway-worker-{slot.index}",
        )
        process.start()
        sender.close()
        theirs.close()
        slot.process, slot.ready, slot.started, slot.restart_at = (
            process,
            receiver,
            time.monotonic(),
            None,
        )

    def _await_ready(self) -> bool:
        """Every first worker listens; any that exits first stops the start (it said why)."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self._stopping:
            pending = [slot.ready for slot in self._slots if slot.ready is not None]
            if not pending:
                return True
            timeout = min(POLL_S, max(0.0, deadline - time.monotonic()))
            for pipe in wait([*pending, self._wake_read], timeout=timeout):
                if pipe == self._wake_read:
                    continue
                slot = next(slot for slot in self._slots if slot.ready is pipe)
                if not self._take_ready(slot):
                    assert slot.process is not None
                    slot.process.join(5)
                    log.error(
                        "worker %d exited during start-up (exit code %s); stopping",
                        slot.process.pid,
                        slot.process.exitcode,
                    )
                    return False
            if time.monotonic() > deadline:
                log.error("workers not ready after %.0fs", READY_TIMEOUT_S)
                return False
        return False

    def _take_ready(self, slot: _Slot) -> bool:
        """Read a worker's readiness report; False if it exited instead."""
        assert slot.ready is not None
        try:
            slot.ready.recv()
            return True
        except EOFError:
            return False
        finally:
            slot.ready.close()
            slot.ready = None

    def _supervise(self, config: GatewayConfig) -> int:
        """Replace dead workers until a signal (0) or until one keeps dying (1)."""
        from prometheus_client import multiprocess

        while True:
            self._wait()
            if self._stopping:
                return 0
            for slot in self._slots:
                process = slot.process
                if process is not None and not process.is_alive():
                    assert process.pid is not None
                    multiprocess.mark_process_dead(process.pid)  # type: ignore[no-untyped-call]
                    if not self._schedule_restart(slot, process):
                        return 1
                if slot.restart_at is not None and time.monotonic() >= slot.restart_at:
                    self._spawn(slot, config)

    def _wait(self) -> None:
        """Until a worker exits or reports ready, a restart is due, or ``POLL_S`` (signals)."""
        now = time.monotonic()
        due = [max(0.0, slot.restart_at - now) for slot in self._slots if slot.restart_at]
        handles: list[Connection | int] = [self._wake_read]
        for slot in self._slots:
            if slot.process is not None:
                handles.append(slot.process.sentinel)
            if slot.ready is not None:
                handles.append(slot.ready)
        for handle in wait(handles, timeout=min([POLL_S, *due])):
            for slot in self._slots:
                if slot.ready is handle and self._take_ready(slot):
                    assert slot.process is not None
                    log.info("worker %d (slot %d) ready", slot.process.pid, slot.index)

    def _schedule_restart(self, slot: _Slot, process: BaseProcess) -> bool:
        """Decide when a dead worker's slot gets a new one; False to give up."""
        if self._workers is not None:
            self._workers.unregister(slot.index)
        lived = time.monotonic() - slot.started
        quick = lived < self._policy.quick_exit_s
        slot.quick_exits = slot.quick_exits + 1 if quick else 0
        slot.process = None
        if slot.ready is not None:
            slot.ready.close()
            slot.ready = None
        if slot.quick_exits >= self._policy.max_quick_exits:
            log.error(
                "worker %d (slot %d) exited with %s after %.1fs: %d quick exits in a row "
                "(server.worker_restart.max_quick_exits); giving up",
                process.pid,
                slot.index,
                process.exitcode,
                lived,
                slot.quick_exits,
            )
            return False
        delay = restart_delay(self._policy, slot.quick_exits)
        slot.restart_at = time.monotonic() + delay
        log.error(
            "worker %d (slot %d) exited with %s after %.1fs; replacing it in %.2fs",
            process.pid,
            slot.index,
            process.exitcode,
            lived,
            delay,
        )
        return True

    def _signal_all(self) -> None:
        for slot in self._slots:
            process = slot.process
            if process is not None and process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)

    def _stop_all(self) -> None:
        processes = [slot.process for slot in self._slots if slot.process is not None]
        self._signal_all()  # again for a worker started since (a SIGTERM twice is harmless)
        grace = self._config.server.graceful_shutdown_s + 5
        deadline = time.monotonic() + grace
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
        for slot in self._slots:
            slot.process = None
            if slot.ready is not None:
                slot.ready.close()
                slot.ready = None
        for sock in self._reserved:
            sock.close()
