"""What a worker does with a sampled request: hands it to its shadow process, off its own loop.

The service calls :meth:`Shadowing.offer` with every answered request. It draws the sample and,
on a later turn of the loop (the client's reply is written by then), frames what the shadow
process needs into one non-blocking write (:mod:`gateway.shadow.link`). The process runs only
while some model has a ``shadow:`` plan. Its outcomes come back as reports and are counted in
this worker's metrics and ring, so ``/metrics`` (merged across workers as ever) and
``GET /admin/models/{m}/shadow/examples`` see them as the worker's own.

A request whose trace is recorded is shadowed on the worker's own loop as before
(:class:`Mirror`): its shadow calls are client spans of that trace, which lives here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Mapping, Sequence

from gateway.config import GatewayConfig
from gateway.errors import GatewayError
from gateway.inference import InferRequest, InferResponse, Payload, Tensor
from gateway.metrics import GatewayMetrics, RequestRecord
from gateway.routing.router import Variant
from gateway.shadow.job import answer_of, needs_inputs, wire_bytes, wire_of
from gateway.shadow.link import Pair, Report, ShadowProcess
from gateway.shadow.mirror import RING_SIZE, Mirror
from gateway.shadow.plan import ShadowPlan
from gateway.shadow.ring import ExampleRing
from gateway.tracing.trace import Trace

log = logging.getLogger(__name__)


def _always() -> float:
    return 0.0


class Shadowing:
    def __init__(
        self,
        metrics: GatewayMetrics,
        plans: Mapping[str, ShadowPlan] | None = None,
        config: GatewayConfig | None = None,
        draw: Callable[[], float] = random.random,
        ring_size: int = RING_SIZE,
    ) -> None:
        self._metrics = metrics
        self._draw = draw
        self._plans: Mapping[str, ShadowPlan] = dict(plans or {})
        self._config = config
        self.ring = ExampleRing(ring_size)
        self.local = Mirror(metrics, self._plans, draw=_always)
        """Shadows the requests whose trace is recorded."""
        self.local.ring = self.ring
        self.process = ShadowProcess(self._report, self._lost)
        self._decoding: set[asyncio.Task[None]] = set()
        """Hand-offs waiting for a decode (and a stop of the process under way)."""

    def start(self) -> None:
        """Start the shadow process if a plan needs it (the loop is running now)."""
        if self._plans and self._config is not None:
            self.process.configure(self._config)

    def apply(self, plans: Mapping[str, ShadowPlan], config: GatewayConfig) -> None:
        """Shadow as ``plans`` say from now on: the process gets ``config`` (it builds the same
        plans from it); it stops when no plan is left."""
        self._plans = dict(plans)
        self._config = config
        self.local.apply(self._plans)
        if self._plans:
            self.process.configure(config)
        elif self.process.running:
            task = asyncio.get_running_loop().create_task(self.process.stop())
            self._decoding.add(task)
            task.add_done_callback(self._decoding.discard)

    def plan(self, model: str) -> ShadowPlan | None:
        return self._plans.get(model)

    def offer(
        self,
        request: InferRequest,
        primary: Variant,
        response: InferResponse,
        record: RequestRecord | None = None,
    ) -> None:
        """A request answered by ``primary``: shadow it if sampled (never blocks, never raises)."""
        plan = self._plans.get(primary.model)
        if plan is None or not plan.sampled(self._draw):
            return
        targets = plan.targets(primary)
        if not targets:
            return
        trace = record.trace if record is not None else None
        if trace is not None and trace.sampled and trace.sink is not None:
            self.local.offer(request, primary, response, record)
            return
        if record is not None:
            record.shadowed = True
        asyncio.get_running_loop().call_soon(
            self._hand_off, plan, request, primary, response, targets, trace
        )

    def offer_failure(self, primary: Variant) -> None:
        """The primary failed on its side: a sampled request is an ``error`` of every pair (there
        is no answer to compare with), without a shadow call."""
        plan = self._plans.get(primary.model)
        if plan is not None and plan.sampled(self._draw):
            self.local.offer_failure(primary)  # sampled here: the local mirror draws nothing

    def _hand_off(
        self,
        plan: ShadowPlan,
        request: InferRequest,
        primary: Variant,
        response: InferResponse,
        targets: Sequence[Variant],
        trace: Trace | None,
    ) -> None:
        answer = answer_of(response)
        if answer is None or needs_inputs(request):
            task = asyncio.get_running_loop().create_task(
                self._decode_then_hand_off(plan, request, primary, response, targets, trace)
            )
            self._decoding.add(task)
            task.add_done_callback(self._decoding.discard)
            return
        self._send(plan, request, primary, answer, targets, trace)

    async def _decode_then_hand_off(
        self,
        plan: ShadowPlan,
        request: InferRequest,
        primary: Variant,
        response: InferResponse,
        targets: Sequence[Variant],
        trace: Trace | None,
    ) -> None:
        """Decode what the shadow process cannot decode alone (its decoder needs this worker's
        metadata cache), then hand over."""
        # A shadow that forwards the body needs no tensors; the others will count an error.
        with contextlib.suppress(GatewayError, ValueError):
            await request.input_tensors()
        answer: list[Tensor] | Payload | str
        try:
            answer = await response.output_tensors()
        except GatewayError as error:
            answer = error.message
        except ValueError as error:
            answer = str(error)
        self._send(plan, request, primary, answer, targets, trace)

    def _send(
        self,
        plan: ShadowPlan,
        request: InferRequest,
        primary: Variant,
        answer: list[Tensor] | Payload | str,
        targets: Sequence[Variant],
        trace: Trace | None,
    ) -> None:
        pairs = [(plan.model, primary.name, target.name) for target in targets]
        try:
            job = wire_of(request, primary.name, answer, trace)
            sent = self.process.send(job, wire_bytes(request, answer), pairs)
        except Exception:  # a value pickle cannot take: never the request's problem
            log.exception("handing a shadow job over failed")
            sent = False
        if not sent:
            for model, name, shadow in pairs:
                self._metrics.shadow_result(model, name, shadow, "dropped")

    def _report(self, report: Report) -> None:
        counts, diffs, examples = report
        for model, example in examples:  # before the counts: a reader that saw them finds these
            self.ring.add(model, example)
        for (model, primary, shadow), values in diffs.items():
            for value in values:
                self._metrics.shadow_diff(model, primary, shadow, value)
        for (model, primary, shadow, result), count in counts.items():
            self._metrics.shadow_result(model, primary, shadow, result, count)
            self.process.reported((model, primary, shadow), count)

    def _lost(self, lost: dict[Pair, int]) -> None:
        """Copies the shadow process took with it when it died."""
        for (model, primary, shadow), count in lost.items():
            self._metrics.shadow_result(model, primary, shadow, "dropped", count)

    async def close(self) -> None:
        for task in list(self._decoding):
            task.cancel()
        await self.local.close()
        await self.process.stop()
