"""Periodic readiness probes of every backend model version the routes use.

Each worker probes on its own (no shared state); the results drive ``/v2/health/ready``, the
per-model ready endpoints and the ``gateway_variant_ready`` gauge. Probes are paced: at most
``CONCURRENT_PROBES`` at once and ``PROBES_PER_S`` per second, so a catalog of thousands of model
versions is swept over several seconds instead of stalling the event loop (and the backends)
every interval.

A probe is answered (ready or not: a refused connection, an error status or nonsense count as
"not ready" at once) or missed (no answer within its timeout, which a busy backend can cause).
Misses keep the last state until ``UNHEALTHY_THRESHOLD`` of them come in a row, like Envoy's
health checker counts failures before ejecting a host.

Every verdict also goes to the :class:`~gateway.health.board.HealthBoard` (routing skips targets
that are not ready, and a passing probe ends an outlier ejection). When a target that was not
ready passes again, a gRPC backend first makes sure its inference channel is connected
(:mod:`gateway.backends.grpc_reconnect`), so the first requests sent to it do not fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway.backends.base import Backend, BackendModel
from gateway.backends.grpc_reconnect import Reconnects
from gateway.health.board import HealthBoard
from gateway.routing.router import ModelRoute, Router, Selection, Variant

log = logging.getLogger(__name__)

CONCURRENT_PROBES = 32
PROBES_PER_S = 1000.0
UNHEALTHY_THRESHOLD = 3
"""Probes in a row without an answer before a ready target counts as not ready."""


class Readiness:
    def __init__(self, router: Router, interval_s: float, board: HealthBoard | None = None) -> None:
        self._router = router
        self._board = board
        self._interval_s = interval_s
        self._targets = _targets(router)
        self._ready: dict[tuple[str, BackendModel], bool] = {key: False for key in self._targets}
        self._misses: dict[tuple[str, BackendModel], int] = {}
        self._probed: set[tuple[str, BackendModel]] = set()
        self._server_ready = False
        self._draining = False
        self._task: asyncio.Task[None] | None = None
        self._extra: set[asyncio.Task[None]] = set()

    def retarget(self, router: Router) -> None:
        """Follow a new routing table: a target on the same backend client keeps its state (a
        reload never blips readiness), new ones start not ready and are probed at once."""
        targets = _targets(router)
        ready: dict[tuple[str, BackendModel], bool] = {}
        fresh = []
        for key, (backend, _) in targets.items():
            previous = self._targets.get(key)
            if previous is not None and previous[0] is backend:
                ready[key] = self._ready[key]
            else:
                ready[key] = False
                self._misses.pop(key, None)
                self._probed.discard(key)
                fresh.append(key)
        self._router, self._targets, self._ready = router, targets, ready
        self._misses = {key: n for key, n in self._misses.items() if key in targets}
        if not self._draining:
            self._server_ready = all(self.model_ready(route) for route in router.models)
        if fresh and self._task is not None:
            task = asyncio.get_running_loop().create_task(self._probe_keys(fresh))
            self._extra.add(task)
            task.add_done_callback(self._extra.discard)

    async def start(self) -> None:
        """Probe now and then every interval, in the background: start-up never waits on it."""
        self._task = asyncio.create_task(self._loop(), name="readiness-probes")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for task in list(self._extra):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:
            try:
                await self.probe()
            except Exception:  # a probe bug must not end probing
                log.exception("readiness probe failed")
            await asyncio.sleep(self._interval_s)

    async def probe(self) -> None:
        """One sweep over every target, paced; readiness is updated as each batch answers."""
        await self._probe_keys(list(self._targets))

    async def _probe_keys(self, keys: list[tuple[str, BackendModel]]) -> None:
        loop = asyncio.get_running_loop()
        changed = False
        for start in range(0, len(keys), CONCURRENT_PROBES):
            began = loop.time()
            batch = keys[start : start + CONCURRENT_PROBES]
            backends = [self._targets[key][0] for key in batch if key in self._targets]
            batch = [key for key in batch if key in self._targets]
            results = await asyncio.gather(
                *(backend.ready(key[1]) for backend, key in zip(backends, batch, strict=True)),
                return_exceptions=True,
            )
            for key, result in zip(batch, results, strict=True):
                if key not in self._ready:  # the table changed during the probe
                    continue
                if isinstance(result, BaseException):
                    log.warning("readiness probe of %s %s raised %r", key[0], key[1], result)
                ready = self._verdict(key, result)
                if ready != self._ready[key]:
                    log.info("%s %s/%s ready=%s", key[0], key[1].name, key[1].version, ready)
                    changed = True
                    if ready and key in self._probed:
                        await self._reconnect(self._targets[key][0])
                        if key not in self._ready:
                            continue
                self._ready[key] = ready
                self._probed.add(key)
                if self._board is not None:
                    self._board.set_ready(key[0], key[1], ready)
            if start + CONCURRENT_PROBES < len(keys):
                await asyncio.sleep(max(0.0, len(batch) / PROBES_PER_S - (loop.time() - began)))
        if changed and not self._draining:
            self._server_ready = all(self.model_ready(route) for route in self._router.models)
        if self._board is not None:
            self._board.outliers.expire()

    async def _reconnect(self, backend: Backend) -> None:
        if isinstance(backend, Reconnects):
            try:
                if await backend.reconnect():
                    log.info("%s: new inference channel (the old was not connected)", backend.name)
            except Exception:  # the probe sweep must go on
                log.exception("reconnecting %s failed", backend.name)

    def _verdict(self, key: tuple[str, BackendModel], result: object) -> bool:
        if result is not None:
            self._misses.pop(key, None)
            return result is True
        misses = self._misses[key] = self._misses.get(key, 0) + 1
        if misses == UNHEALTHY_THRESHOLD and self._ready[key]:
            log.warning(
                "%s %s/%s: %d probes unanswered", key[0], key[1].name, key[1].version, misses
            )
        return self._ready[key] and misses < UNHEALTHY_THRESHOLD

    def variant_ready(self, variant: Variant) -> bool:
        return self._ready.get((variant.backend.name, variant.target), False)

    def model_ready(self, route: ModelRoute, selection: Selection | None = None) -> bool:
        """Ready when a variant that could take the request is ready.

        Without a version or label, drained variants do not count: they take no unpinned traffic.
        """
        if selection is None or (selection.version is None and selection.label is None):
            candidates = [v for v in route.variants.values() if v.weight > 0 and v.enabled]
        else:
            candidates = selection.variants(route)
        return any(self.variant_ready(v) for v in candidates)

    def drain(self) -> None:
        """From now on the server reports not ready (SIGTERM: load balancers stop sending)."""
        self._draining = True
        self._server_ready = False

    def server_ready(self) -> bool:
        """Every model has a ready variant, as of the latest probes (cached: O(1) per call)."""
        return self._server_ready


def _targets(router: Router) -> dict[tuple[str, BackendModel], tuple[Backend, list[Variant]]]:
    targets: dict[tuple[str, BackendModel], tuple[Backend, list[Variant]]] = {}
    for route in router.models:
        for variant in route.variants.values():
            key = (variant.backend.name, variant.target)
            targets.setdefault(key, (variant.backend, []))[1].append(variant)
    return targets
