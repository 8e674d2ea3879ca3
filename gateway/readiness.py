"""Periodic readiness probes of every backend model version the routes use.

Each worker probes on its own (no shared state); the results drive ``/v2/health/ready``, the
per-model ready endpoints and the ``gateway_variant_ready`` gauge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway.backends.base import Backend, BackendModel
from gateway.routing.router import ModelRoute, Router, Selection, Variant

log = logging.getLogger(__name__)


class Readiness:
    def __init__(self, router: Router, interval_s: float) -> None:
        self._router = router
        self._interval_s = interval_s
        self._targets: dict[tuple[str, BackendModel], tuple[Backend, list[Variant]]] = {}
        for route in router.models:
            for variant in route.variants.values():
                key = (variant.backend.name, variant.target)
                self._targets.setdefault(key, (variant.backend, []))[1].append(variant)
        self._ready: dict[tuple[str, BackendModel], bool] = {key: False for key in self._targets}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Probe now and then every interval, in the background: start-up never waits on it."""
        self._task = asyncio.create_task(self._loop(), name="readiness-probes")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.probe()
            except Exception:  # a probe bug must not end probing
                log.exception("readiness probe failed")
            await asyncio.sleep(self._interval_s)

    async def probe(self) -> None:
        keys = list(self._targets)
        results = await asyncio.gather(
            *(self._targets[key][0].ready(key[1]) for key in keys), return_exceptions=True
        )
        for key, result in zip(keys, results, strict=True):
            ready = result is True
            if ready != self._ready[key]:
                log.info("%s %s/%s ready=%s", key[0], key[1].name, key[1].version, ready)
            self._ready[key] = ready

    def variant_ready(self, variant: Variant) -> bool:
        return self._ready.get((variant.backend.name, variant.target), False)

    def model_ready(self, route: ModelRoute, selection: Selection | None = None) -> bool:
        """Ready when a variant that could take the request is ready.

        Without a version or label, drained variants do not count: they take no unpinned traffic.
        """
        if selection is None or (selection.version is None and selection.label is None):
            candidates = [v for v in route.variants.values() if v.weight > 0]
        else:
            candidates = selection.variants(route)
        return any(self.variant_ready(v) for v in candidates)

    def server_ready(self) -> bool:
        return all(self.model_ready(route) for route in self._router.models)
