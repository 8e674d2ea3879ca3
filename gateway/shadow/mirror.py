"""The mirror: the service hands it each answered request; it samples, copies the request to the
model's shadow variants from a bounded pool, compares the answers and counts the outcome.

Nothing here runs before the client has its answer: ``offer`` only draws the sample and submits
a job (or counts a drop) and returns; the job's first step runs on a later turn of the event
loop. A shadow call has its own deadline, and every failure on its side is an outcome
(``error``), never an exception for the request.

Noise: shadows serving the primary's own version (on another runtime, say) should agree with it.
They are compared like any shadow, and their per-element differences on that request widen the
tolerance of the other shadows' comparisons (see :mod:`gateway.shadow.compare`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import numpy as np

from gateway.errors import GatewayError
from gateway.inference import InferRequest, InferResponse, Tensor
from gateway.metrics import RequestRecord
from gateway.routing.router import Variant
from gateway.shadow.compare import (
    Comparison,
    NoiseFloor,
    Tolerance,
    combine,
    compare,
    noise_floor,
    top_classes,
)
from gateway.shadow.plan import ShadowPlan
from gateway.shadow.pool import ShadowPool
from gateway.shadow.ring import Example, ExampleRing
from gateway.tracing.calls import backend_call
from gateway.tracing.context import OUTGOING, Outgoing

log = logging.getLogger(__name__)

RING_SIZE = 100
"""Diverging examples kept per model and worker."""
THREAD_ELEMENTS = 1 << 16
"""Outputs larger than this (elements, all together) are compared on a thread."""


class ShadowCounts(Protocol):
    """Where outcomes go: the worker's metrics, or the shadow process's tally of them."""

    def shadow_result(self, model: str, primary: str, shadow: str, result: str) -> None: ...

    def shadow_diff(self, model: str, primary: str, shadow: str, value: float) -> None: ...


class Mirror:
    def __init__(
        self,
        metrics: ShadowCounts,
        plans: Mapping[str, ShadowPlan] | None = None,
        draw: Callable[[], float] = random.random,
        ring_size: int = RING_SIZE,
    ) -> None:
        self._metrics = metrics
        self._draw = draw
        self._plans: Mapping[str, ShadowPlan] = {}
        self._pools: dict[str, ShadowPool] = {}
        self.ring = ExampleRing(ring_size)
        self.apply(plans or {})

    def apply(self, plans: Mapping[str, ShadowPlan]) -> None:
        """Shadow as ``plans`` say from now on; jobs under way finish with the plan they had."""
        for name, plan in plans.items():
            pool = self._pools.get(name)
            if pool is None:
                self._pools[name] = ShadowPool(plan.max_concurrent, plan.max_queued)
            else:
                pool.resize(plan.max_concurrent, plan.max_queued)
        self._plans = dict(plans)

    def plan(self, model: str) -> ShadowPlan | None:
        return self._plans.get(model)

    def offer(
        self,
        request: InferRequest,
        primary: Variant,
        response: InferResponse,
        record: RequestRecord | None = None,
        outgoing: Outgoing | None = None,
    ) -> None:
        """A request answered by ``primary``: shadow it if sampled (never blocks, never raises).
        ``record`` is the request's: it says the request was shadowed, and its trace (if any)
        gets a client span per shadow call. ``outgoing`` (without a record): the trace context
        the shadow calls send."""
        plan = self._plans.get(primary.model)
        if plan is None or not plan.sampled(self._draw):
            return
        targets = plan.targets(primary)
        if not targets:
            return
        pool = self._pools[plan.model]

        async def job() -> None:
            await self._shadow(plan, request, primary, response, targets, record, outgoing)

        if not pool.submit(job):
            for target in targets:
                self._metrics.shadow_result(plan.model, primary.name, target.name, "dropped")
        elif record is not None:
            record.shadowed = True

    def offer_failure(self, primary: Variant) -> None:
        """The primary failed on its side: a sampled request is an ``error`` of every pair (there
        is no answer to compare with), without a shadow call."""
        plan = self._plans.get(primary.model)
        if plan is None or not plan.sampled(self._draw):
            return
        for target in plan.targets(primary):
            self._metrics.shadow_result(plan.model, primary.name, target.name, "error")

    async def close(self) -> None:
        for pool in self._pools.values():
            await pool.close()

    async def _shadow(
        self,
        plan: ShadowPlan,
        request: InferRequest,
        primary: Variant,
        response: InferResponse,
        targets: Sequence[Variant],
        record: RequestRecord | None,
        outgoing: Outgoing | None = None,
    ) -> None:
        if outgoing is not None:
            OUTGOING.set(outgoing)  # this job's own task: its context is its own
        if len(targets) == 1:  # no task per call
            answers = [await self._call(plan, targets[0], request, record)]
        else:
            answers = await asyncio.gather(*(self._call(plan, t, request, record) for t in targets))
        expected: list[Tensor] | None = None
        primary_error = ""
        try:
            expected = await response.output_tensors()
        except GatewayError as error:
            primary_error = f"primary's outputs: {error.message}"
        noise = None
        if expected is not None and any(t.version != primary.version for t in targets):
            noise = combine(
                [
                    noise_floor(expected, answer, plan.tolerance.top_k)
                    for target, answer in zip(targets, answers, strict=True)
                    if target.version == primary.version and not isinstance(answer, str)
                ]
            )
        for target, answer in zip(targets, answers, strict=True):
            if expected is None:
                comparison = Comparison(False, primary_error, None)
            elif isinstance(answer, str):
                comparison = Comparison(False, answer, None)
            else:
                own_version = target.version == primary.version
                comparison = await self._compare(
                    plan.tolerance_for(primary, target),
                    expected,
                    answer,
                    None if own_version else noise,
                )
            failed = expected is None or isinstance(answer, str)
            result = "agree" if comparison.agree else "error" if failed else "diverge"
            self._metrics.shadow_result(plan.model, primary.name, target.name, result)
            if comparison.max_abs_diff is not None:
                self._metrics.shadow_diff(
                    plan.model, primary.name, target.name, comparison.max_abs_diff
                )
            if result != "agree":
                await self._remember(
                    plan, request, primary, target, result, comparison, expected, answer
                )

    async def _call(
        self,
        plan: ShadowPlan,
        target: Variant,
        request: InferRequest,
        record: RequestRecord | None,
    ) -> list[Tensor] | str:
        """The shadow's outputs, or why there are none."""
        try:
            async with asyncio.timeout(plan.timeout_s):
                if record is None:
                    answer = await target.backend.infer(target.target, request, plan.timeout_s)
                else:
                    with backend_call(record, target, shadow=True):
                        answer = await target.backend.infer(target.target, request, plan.timeout_s)
                return await answer.output_tensors()
        except TimeoutError:
            return f"shadow timed out after {plan.timeout_s:g} s"
        except GatewayError as error:
            return f"shadow: {error.message}"

    async def _compare(
        self,
        tolerance: Tolerance,
        expected: list[Tensor],
        answer: list[Tensor],
        floor: NoiseFloor | None,
    ) -> Comparison:
        size = sum(t.data.size for t in expected) + sum(t.data.size for t in answer)
        if size > THREAD_ELEMENTS:
            return await asyncio.to_thread(compare, expected, answer, tolerance, floor)
        return compare(expected, answer, tolerance, floor)

    async def _remember(
        self,
        plan: ShadowPlan,
        request: InferRequest,
        primary: Variant,
        target: Variant,
        result: str,
        comparison: Comparison,
        expected: list[Tensor] | None,
        answer: list[Tensor] | str,
    ) -> None:
        k = max(plan.tolerance.top_k, 1)
        example = Example(
            at=time.time(),
            request_id=request.id or uuid.uuid4().hex[:16],
            inputs_digest=await inputs_digest(request),
            primary=primary.name,
            shadow=target.name,
            result=result,
            reason=comparison.reason,
            max_abs_diff=comparison.max_abs_diff,
            mean_abs_diff=comparison.mean_abs_diff,
            max_rel_diff=comparison.max_rel_diff,
            primary_top=top_classes(expected, k) if expected is not None else [],
            shadow_top=top_classes(answer, k) if not isinstance(answer, str) else [],
        )
        self.ring.add(plan.model, example)


async def inputs_digest(request: InferRequest) -> str:
    """BLAKE2b of the input tensors: the same inputs give the same digest on every protocol."""
    try:
        inputs = await request.input_tensors()
    except (GatewayError, ValueError):
        return ""
    digest = hashlib.blake2b(digest_size=8)
    for tensor in inputs:
        digest.update(f"{tensor.name}|{tensor.datatype}|{tensor.shape}|".encode())
        if tensor.data.dtype.kind == "O":
            for item in tensor.data.reshape(-1):
                value = item if isinstance(item, bytes) else str(item).encode()
                digest.update(len(value).to_bytes(8, "little") + value)
        else:
            digest.update(np.ascontiguousarray(tensor.data).data)
    return digest.hexdigest()
