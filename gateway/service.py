"""The core: route a request, call the chosen backend, and account for it.

Front ends decode their protocol into :class:`InferRequest`, call :meth:`InferenceService.infer`,
and encode the :class:`InferResponse` back; nothing here knows about HTTP or gRPC.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from gateway.errors import BackendError, GatewayError, ModelNotReady
from gateway.inference import InferRequest, InferResponse, ModelMetadata
from gateway.metrics import GatewayMetrics, RequestRecord
from gateway.readiness import Readiness
from gateway.routing.router import ModelRoute, Router, Variant

METADATA_TTL_S = 60.0


@dataclass(slots=True, frozen=True)
class RouteHints:
    """What the client said about routing, outside the tensors."""

    pin: str | None = None
    sticky_key: str | None = None
    timeout_s: float | None = None


@dataclass(slots=True, frozen=True)
class ModelView:
    """A public model's metadata: what its backends report, plus the gateway's catalog."""

    name: str
    versions: list[str]
    platform: str
    metadata: ModelMetadata
    variants: list[Variant]


class InferenceService:
    def __init__(self, router: Router, readiness: Readiness, metrics: GatewayMetrics) -> None:
        self.router = router
        self.readiness = readiness
        self.metrics = metrics
        self._metadata: dict[tuple[str, object], tuple[float, ModelMetadata]] = {}

    async def infer(
        self, request: InferRequest, hints: RouteHints, record: RequestRecord
    ) -> tuple[InferResponse, Variant]:
        """Serve one request; the response names the public model and the version served."""
        variant = self.router.route(request.model, request.version, hints.pin, hints.sticky_key)
        record.model = variant.model
        record.variant = variant
        backend = variant.backend
        timeout_s = backend.timeout_s
        if hints.timeout_s is not None:
            timeout_s = min(timeout_s, hints.timeout_s)
        inflight = self.metrics.inflight_child(backend.name)
        inflight.inc()
        started = time.perf_counter()
        try:
            response = await backend.infer(variant.target, request, timeout_s)
        finally:
            record.upstream_s = time.perf_counter() - started
            inflight.dec()
        response.model = variant.model
        response.version = variant.version
        if response.id is None:
            response.id = request.id
        return response, variant

    def model(self, name: str, version: str | None = None) -> ModelRoute:
        route = self.router.model(name)
        self.router.check_version(route, version)
        return route

    async def model_view(self, name: str, version: str | None = None) -> ModelView:
        """Metadata as the backends report it: tensors from the preferred variant that answers
        (ready, then weighted ones first), platforms from every variant that answers."""
        route = self.model(name, version)
        variants = [v for v in route.variants.values() if version is None or v.version == version]
        variants.sort(key=lambda v: (not self.readiness.variant_ready(v), v.weight == 0))
        results = await asyncio.gather(
            *(self._variant_metadata(v) for v in variants), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, GatewayError):
                raise result
        described = [r for r in results if isinstance(r, ModelMetadata)]
        if not described:
            errors = [r.message for r in results if isinstance(r, GatewayError)]
            detail = f": {errors[0]}" if errors else ""
            raise ModelNotReady(f"no backend of model {name!r} could describe it{detail}")
        return ModelView(
            name=route.name,
            versions=[version] if version is not None else route.versions,
            platform=",".join(sorted({m.platform for m in described})),
            metadata=described[0],
            variants=variants,
        )

    async def _variant_metadata(self, variant: Variant) -> ModelMetadata:
        key = (variant.backend.name, variant.target)
        cached = self._metadata.get(key)
        if cached is not None and time.monotonic() - cached[0] < METADATA_TTL_S:
            return cached[1]
        metadata = await variant.backend.metadata(variant.target)
        if not metadata.inputs and not metadata.outputs:
            raise BackendError(f"backend {variant.backend.name!r} reported no tensors")
        self._metadata[key] = (time.monotonic(), metadata)
        return metadata
