"""How a change reaches every worker of a replica, and how the plane learns they applied it.

One worker (``server.workers: 1``): the plane runs in the worker's event loop and applies the
new config to its gateway directly. Several: the plane runs in the supervisor (see
:mod:`gateway.supervisor`), which holds a duplex pipe to every worker; a change is sent to each
and answered once each acknowledged it. A worker is started with the plane's current config
under the same lock that sends changes, so none misses one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
import time
from multiprocessing.connection import Connection
from typing import Any, Protocol

from gateway.app import Gateway
from gateway.config import GatewayConfig
from gateway.errors import BackendTimeout, InternalError
from gateway.health.board import key_of
from gateway.shadow.admin import worker_examples

log = logging.getLogger(__name__)

ACK_TIMEOUT_S = 15.0
"""How long a change waits for a worker's acknowledgement (a worker still starting answers once
it listens)."""

READY_TIMEOUT_S = 2.0
"""How long a health question waits for a worker (one still starting answers only once it
listens; it is then left out)."""

Health = dict[str, dict[str, tuple[bool, bool]]]
"""model -> variant -> (ready, ejected): the latest probes, and outlier ejection."""


class Workers(Protocol):
    async def apply(self, config: GatewayConfig, number: int) -> int:
        """Apply on every worker; returns how many applied it. Raises if one did not."""
        ...

    async def health(self) -> Health:
        """Every worker's view together: ready when every worker that answered says so,
        ejected when one of them has it out (each worker probes and ejects on its own)."""
        ...

    async def shadow_examples(self, model: str) -> list[list[dict[str, Any]]]:
        """Each worker's recent diverging shadow comparisons of ``model``."""
        ...


def health_of(gateway: Gateway) -> Health:
    ready = gateway.readiness.variant_ready
    outliers = gateway.health.outliers
    return {
        route.name: {
            v.name: (ready(v), outliers.is_ejected(key_of(v))) for v in route.variants.values()
        }
        for route in gateway.table.router.models
    }


def merge(views: list[Health]) -> Health:
    merged: Health = {}
    for view in views:
        for model, variants in view.items():
            into = merged.setdefault(model, {})
            for name, (ready, ejected) in variants.items():
                was = into.get(name, (True, False))
                into[name] = (was[0] and ready, was[1] or ejected)
    return merged


class LocalWorker:
    """The one worker, in the plane's own event loop."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    async def apply(self, config: GatewayConfig, number: int) -> int:
        await self._gateway.apply(config, number)
        return 1

    async def health(self) -> Health:
        return health_of(self._gateway)

    async def shadow_examples(self, model: str) -> list[list[dict[str, Any]]]:
        return [worker_examples(self._gateway.mirror, model)]


class PipeWorkers:
    """Every worker of the supervisor, each behind its control pipe."""

    def __init__(self, config: GatewayConfig, number: int) -> None:
        self._lock = threading.Lock()  # current config and the set of pipes change together
        self._io = threading.Lock()  # one exchange on the pipes at a time
        self._current = (config, number)
        self._pipes: dict[int, Connection] = {}
        self._exchanges = itertools.count(1)  # tags replies: a late one is told from the next

    def register(self, slot: int, pipe: Connection) -> tuple[GatewayConfig, int]:
        """A worker is being started in ``slot``: the config (and number) to start it with."""
        with self._lock:
            old = self._pipes.pop(slot, None)
            if old is not None:
                old.close()
            self._pipes[slot] = pipe
            return self._current

    def unregister(self, slot: int) -> None:
        with self._lock:
            pipe = self._pipes.pop(slot, None)
        if pipe is not None:
            with self._io:
                pipe.close()

    def current(self) -> tuple[GatewayConfig, int]:
        with self._lock:
            return self._current

    async def apply(self, config: GatewayConfig, number: int) -> int:
        return await asyncio.to_thread(self._apply, config, number)

    async def health(self) -> Health:
        return await asyncio.to_thread(self._health)

    async def shadow_examples(self, model: str) -> list[list[dict[str, Any]]]:
        return await asyncio.to_thread(self._shadow_examples, model)

    def _apply(self, config: GatewayConfig, number: int) -> int:
        with self._io:
            with self._lock:
                self._current = (config, number)
                pipes = dict(self._pipes)
            tag = next(self._exchanges)
            message = ("apply", tag, config, number)
            sent = {slot: pipe for slot, pipe in pipes.items() if _send(pipe, message)}
            deadline = time.monotonic() + ACK_TIMEOUT_S
            applied, failures = 0, []
            for slot, pipe in sent.items():
                reply = _receive(pipe, deadline, tag)
                if reply is None:
                    failures.append(f"worker {slot} did not answer within {ACK_TIMEOUT_S:g}s")
                elif reply == "gone":
                    continue  # it exited: its replacement starts with this config
                elif reply[0] == "applied":
                    applied += 1
                else:
                    failures.append(f"worker {slot}: {reply[2]}")
        if failures:
            error = BackendTimeout if all("answer" in f for f in failures) else InternalError
            raise error(f"applied on {applied} of {len(sent)} workers: " + "; ".join(failures))
        return applied

    def _health(self) -> Health:
        with self._io:
            with self._lock:
                pipes = list(self._pipes.values())
            tag = next(self._exchanges)
            asked = [pipe for pipe in pipes if _send(pipe, ("health", tag))]
            deadline = time.monotonic() + READY_TIMEOUT_S
            views = []
            for pipe in asked:
                reply = _receive(pipe, deadline, tag)
                if isinstance(reply, tuple) and reply[0] == "health":
                    views.append(reply[2])
        return merge(views)

    def _shadow_examples(self, model: str) -> list[list[dict[str, Any]]]:
        """Asked of every worker (each keeps its own ring); one that does not answer is left out."""
        with self._io:
            with self._lock:
                pipes = list(self._pipes.values())
            tag = next(self._exchanges)
            asked = [pipe for pipe in pipes if _send(pipe, ("shadow_examples", tag, model))]
            deadline = time.monotonic() + ACK_TIMEOUT_S
            found = []
            for pipe in asked:
                reply = _receive(pipe, deadline, tag)
                if isinstance(reply, tuple) and reply[0] == "shadow_examples":
                    found.append(reply[2])
        return found


def _send(pipe: Connection, message: tuple[Any, ...]) -> bool:
    try:
        pipe.send(message)
    except (OSError, ValueError):  # the worker exited (or its pipe was closed)
        return False
    return True


def _receive(pipe: Connection, deadline: float, tag: int) -> tuple[Any, ...] | str | None:
    """The reply tagged ``tag`` (older ones, to questions that timed out, are dropped); None
    at the deadline, "gone" if the worker exited."""
    try:
        while pipe.poll(max(0.0, deadline - time.monotonic())):
            reply: tuple[Any, ...] = pipe.recv()
            if reply[1] == tag:
                return reply
    except (EOFError, OSError, ValueError):
        return "gone"
    return None


class ControlChannel:
    """The worker's end: apply what the supervisor sends, answer its questions."""

    def __init__(self, pipe: Connection, gateway: Gateway) -> None:
        self._pipe = pipe
        self._gateway = gateway
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(pipe.fileno(), self._readable)

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._loop.remove_reader(self._pipe.fileno())
        self._pipe.close()

    def _readable(self) -> None:
        try:
            message = self._pipe.recv()
        except (EOFError, OSError):  # the supervisor is gone; SIGTERM follows
            self._loop.remove_reader(self._pipe.fileno())
            return
        task = self._loop.create_task(self._handle(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, message: tuple[Any, ...]) -> None:
        reply: tuple[Any, ...]
        tag = message[1]
        if message[0] == "apply":
            _, _, config, number = message
            try:
                version = await self._gateway.apply(config, number)
                reply = ("applied", tag, version.number, version.digest)
            except Exception as error:
                log.exception("applying config version %d failed", number)
                reply = ("failed", tag, f"{type(error).__name__}: {error}")
        elif message[0] == "shadow_examples":
            reply = ("shadow_examples", tag, worker_examples(self._gateway.mirror, message[2]))
        else:
            reply = ("health", tag, health_of(self._gateway))
        with contextlib.suppress(OSError, ValueError):
            self._pipe.send(reply)
