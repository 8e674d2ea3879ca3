"""The core: route a request, call the chosen backend, and account for it.

Front ends ask :meth:`InferenceService.route` which variant serves a request, build an
:class:`InferRequest` whose tensors (if a backend of another protocol needs them) are decoded with
that variant's metadata, call :meth:`InferenceService.infer`, and encode the
:class:`InferResponse` back; nothing here knows about HTTP or gRPC.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from gateway.backends.base import TFServingExtras
from gateway.errors import (
    BackendTimeout,
    GatewayError,
    InvalidInput,
    ModelNotReady,
    http_status,
)
from gateway.health.board import HealthBoard
from gateway.inference import InferRequest, InferResponse, ModelMetadata, Payload
from gateway.limits import Breakers
from gateway.metadata import MetadataCache
from gateway.metrics import GatewayMetrics, RequestRecord
from gateway.observer import RequestObserver
from gateway.readiness import Readiness
from gateway.retry import RetryBudgets, back_off, next_variant, retry_reason
from gateway.routing.router import ModelRoute, Selection, Variant, choose, version_order
from gateway.routing.table import RoutingTable
from gateway.shadow.offload import Shadowing
from gateway.tracing.calls import backend_call


@dataclass(slots=True, frozen=True)
class RouteHints:
    """What the client said about routing, outside the tensors."""

    pin: str | None = None
    sticky_key: str | None = None
    timeout_s: float | None = None


@dataclass(slots=True)
class RouteDecision:
    """The variant chosen for one request, and how long its backend call may take.

    ``variant`` is the one chosen; after :meth:`InferenceService.infer` it is the one that
    served (another, when a retry did). ``deadline`` (``time.monotonic()``) covers every attempt.
    """

    variant: Variant
    timeout_s: float
    route: ModelRoute | None = None
    selection: Selection | None = None
    pinned: bool = False
    sticky_key: str | None = None
    deadline: float = 0.0


@dataclass(slots=True, frozen=True)
class ModelView:
    """A public model's metadata: what its backends report, plus the gateway's catalog."""

    name: str
    versions: list[str]
    platform: str
    metadata: ModelMetadata
    variants: list[Variant]


class InferenceService:
    def __init__(
        self,
        table: RoutingTable,
        readiness: Readiness,
        metrics: GatewayMetrics,
        metadata: MetadataCache,
        health: HealthBoard | None = None,
        mirror: Shadowing | None = None,
        observer: RequestObserver | None = None,
        breakers: Breakers | None = None,
    ) -> None:
        self.table = table
        """The routing snapshot; replaced as a whole by ``Gateway.apply``, read once a request."""
        self.readiness = readiness
        self.metrics = metrics
        self._metadata = metadata
        self.health = health if health is not None else HealthBoard()
        self.breakers = breakers if breakers is not None else Breakers()
        self._budgets = RetryBudgets()
        self.mirror = mirror
        self.observer = observer if observer is not None else RequestObserver(metrics)
        """What front ends report each finished request to (metrics, trace, access log)."""

    def route(
        self, model: str, version: str | None, label: str | None, hints: RouteHints
    ) -> RouteDecision:
        """Choose the variant that serves one request (front ends decode for it afterwards):
        among the healthy ones, unless pinned."""
        route = self.table.router.model(model)
        selection = route.select(version, label)
        pin, sticky = hints.pin, hints.sticky_key
        variant = choose(route, selection, pin, sticky, self.health.predicate())
        timeout_s = variant.backend.timeout_s
        if hints.timeout_s is not None:
            timeout_s = min(timeout_s, hints.timeout_s)
        deadline = time.monotonic() + timeout_s
        return RouteDecision(variant, timeout_s, route, selection, bool(pin), sticky, deadline)

    async def metadata(self, decision: RouteDecision) -> ModelMetadata:
        """The routed variant's metadata (cached), within the request's deadline."""
        variant = decision.variant
        return await self._metadata.get(variant.backend, variant.target, decision.timeout_s)

    async def infer(
        self, request: InferRequest, decision: RouteDecision, record: RequestRecord
    ) -> InferResponse:
        """Serve one request; the response names the public model and the version served.

        A failure before any reply byte is retried on another variant (:mod:`gateway.retry`).
        """
        variant = decision.variant
        record.model = variant.model
        record.variant = variant
        record.request_id = request.id
        backend = variant.backend
        timeout_s = decision.timeout_s
        per_try = variant.resilience.retry_policy.per_try_timeout_s
        if per_try is not None and per_try < timeout_s:
            timeout_s = per_try
        breaker = self.breakers[backend]
        deadline = decision.deadline or time.monotonic() + decision.timeout_s  # 0: not given
        queued = breaker.acquire_now(variant.target, deadline) is None
        if queued:
            # Every slot taken: queue (bounded), and call with what the wait left. A request
            # shed here was never sent: it is not retried, and says nothing of the backend.
            timeout_s = min(timeout_s, await breaker.queue(variant.target, deadline))
        # The first attempt, inline (what _attempt does, without a coroutine more per request).
        inflight = self.metrics.inflight_value(backend.name, backend.runtime)
        counts = self._budgets.counts(backend.name)
        inflight.inc(1)
        counts.active += 1
        started = time.perf_counter()
        try:
            with backend_call(record, variant):
                response = await backend.infer(variant.target, request, timeout_s)
        except GatewayError as error:
            elapsed = time.perf_counter() - started
            counts.active -= 1
            inflight.inc(-1)
            if isinstance(error, BackendTimeout):
                breaker.timed_out(variant.target, elapsed, queued)
            breaker.release()
            self._failed(variant, decision, error)
            try:
                response = await self._retry(request, decision, record, error, timeout_s)
            except GatewayError as final:
                if self.mirror is not None and http_status(final) >= 500:
                    self.mirror.offer_failure(decision.variant)
                raise
            finally:
                record.upstream_s = time.perf_counter() - started
            variant = decision.variant
        except BaseException:
            counts.active -= 1
            inflight.inc(-1)
            breaker.release()
            record.upstream_s = time.perf_counter() - started
            raise
        else:
            elapsed = record.upstream_s = time.perf_counter() - started
            counts.active -= 1
            inflight.inc(-1)
            breaker.succeeded(variant.target, elapsed)
            health = self.health
            if health.outliers.failures:
                health.succeeded(variant)
        response.model = variant.model
        response.version = variant.version
        if response.id is None:
            response.id = request.id
        if self.mirror is not None:
            self.mirror.offer(request, variant, response, record)
        return response

    async def _attempt(
        self,
        variant: Variant,
        request: InferRequest,
        timeout_s: float,
        decision: RouteDecision,
        record: RequestRecord,
    ) -> InferResponse:
        backend = variant.backend
        breaker = self.breakers[backend]
        deadline = decision.deadline or time.monotonic() + timeout_s
        queued = breaker.acquire_now(variant.target, deadline) is None
        if queued:
            timeout_s = min(timeout_s, await breaker.queue(variant.target, deadline))
        inflight = self.metrics.inflight_value(backend.name, backend.runtime)
        counts = self._budgets.counts(backend.name)
        inflight.inc(1)
        counts.active += 1
        started = time.perf_counter()
        try:
            with backend_call(record, variant):
                response = await backend.infer(variant.target, request, timeout_s)
            breaker.observe(variant.target, time.perf_counter() - started)
        except GatewayError as error:
            if isinstance(error, BackendTimeout):
                breaker.timed_out(variant.target, time.perf_counter() - started, queued)
            self._failed(variant, decision, error)
            raise
        finally:
            counts.active -= 1
            inflight.inc(-1)
            breaker.release()
        self.health.succeeded(variant)
        return response

    def _failed(self, variant: Variant, decision: RouteDecision, error: GatewayError) -> None:
        # A timeout the client's own short deadline caused says nothing about the backend.
        cut = isinstance(error, BackendTimeout) and decision.timeout_s < variant.backend.timeout_s
        if decision.route is not None and not cut:
            self.health.failed(variant, decision.route, error)

    async def _retry(
        self,
        request: InferRequest,
        decision: RouteDecision,
        record: RequestRecord,
        error: GatewayError,
        timeout_s: float,
    ) -> InferResponse:
        """Retry a failed first attempt while the policy, deadline and budget allow."""
        first = decision.variant
        policy = first.resilience.retry_policy
        per_try = policy.per_try_timeout_s
        limited = timeout_s < decision.timeout_s  # the first attempt had only its per-try time
        tried = [first]
        for retry in range(1, policy.num_retries + 1):
            reason = retry_reason(error, limited)
            if reason is None or decision.pinned or decision.selection is None:
                raise error
            variant = next_variant(
                decision.selection, tried, decision.sticky_key, self.health.predicate()
            )
            if variant is None:
                raise error
            pause = back_off(policy.retry_back_off, retry)
            left = decision.deadline - time.monotonic() - pause
            if left <= 0:
                raise error
            backend = variant.backend
            if not self._budgets.admits(backend.name, variant.resilience.retry_budget):
                self.metrics.retry_budget_spent(first.model, backend.name)
                raise error
            self.metrics.retried(first.model, backend.name, reason)
            self.metrics.attempt_retried(first.model, tried[-1], reason)
            attempt_s = per_try if per_try is not None and per_try < left else left
            limited = attempt_s < left
            counts = self._budgets.counts(backend.name)
            counts.retries += 1
            decision.variant = record.variant = variant  # its answer or error is the request's
            try:
                await asyncio.sleep(pause)
                response = await self._attempt(variant, request, attempt_s, decision, record)
            except GatewayError as failure:
                error = failure
                tried.append(variant)
                continue
            finally:
                counts.retries -= 1
            return response
        raise error

    async def tf_api(
        self, api: str, decision: RouteDecision, payload: Payload, record: RequestRecord
    ) -> Payload:
        """TF Serving's Classify / Regress, passed through to a TF Serving variant as they are."""
        variant = decision.variant
        record.model = variant.model
        record.variant = variant
        backend = variant.backend
        if not isinstance(backend, TFServingExtras):
            raise InvalidInput(
                f"variant {variant.name!r} runs on {backend.kind}, which has no {api} API; "
                "pin a TF Serving variant or use predict"
            )
        breaker = self.breakers[backend]
        timeout_s = decision.timeout_s
        deadline = decision.deadline or time.monotonic() + timeout_s
        if breaker.acquire_now(variant.target, deadline) is None:
            timeout_s = await breaker.queue(variant.target, deadline)
        started = time.perf_counter()
        try:
            with backend_call(record, variant):
                return await backend.tf_api(api, variant.target, payload, timeout_s)
        finally:
            record.upstream_s = time.perf_counter() - started
            breaker.release()

    def select(
        self, name: str, version: str | None = None, label: str | None = None
    ) -> tuple[ModelRoute, Selection]:
        route = self.table.router.model(name)
        return route, route.select(version, label)

    def model_ready(self, name: str, version: str | None = None, label: str | None = None) -> bool:
        route, selection = self.select(name, version, label)
        return self.readiness.model_ready(route, selection)

    def version_readiness(
        self, name: str, version: str | None = None, label: str | None = None
    ) -> list[tuple[str, bool]]:
        """Each version of the selection, newest first, and whether a variant of it is ready."""
        route, selection = self.select(name, version, label)
        ready: dict[str, bool] = {}
        for variant in selection.variants(route):
            ready[variant.version] = ready.get(variant.version, False) or (
                self.readiness.variant_ready(variant)
            )
        return sorted(ready.items(), key=lambda item: version_order(item[0]), reverse=True)

    def latest_version(
        self, name: str, version: str | None = None, label: str | None = None
    ) -> str:
        """What TF Serving calls the latest version of a selection: the newest that a ready
        variant serves, else the newest (integers before names, as TF Serving has no names)."""
        versions = self.version_readiness(name, version, label)
        numbered = [item for item in versions if item[0].isdigit()] or versions
        ready = [served for served, is_ready in numbered if is_ready]
        return ready[0] if ready else numbered[0][0]

    async def model_view(
        self, name: str, version: str | None = None, label: str | None = None
    ) -> ModelView:
        """Metadata as the backends report it: tensors from the preferred variant that answers
        (ready, then weighted ones first), platforms from every variant that answers.

        Every variant is asked at once, through the cache: a hung one costs this view one
        lookup timeout (then its failure is remembered), and never a request routed elsewhere.
        """
        route, selection = self.select(name, version, label)
        variants = selection.variants(route)
        variants.sort(key=lambda v: (not self.readiness.variant_ready(v), v.weight == 0))
        results = await asyncio.gather(
            *(self._metadata.get(v.backend, v.target) for v in variants), return_exceptions=True
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
            versions=sorted({v.version for v in variants}, key=version_order),
            platform=",".join(sorted({m.platform for m in described})),
            metadata=described[0],
            variants=variants,
        )
