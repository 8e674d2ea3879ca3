"""Deploy a model version into every runtime a request names, or undeploy it, as one operation.

``deploy`` goes through the targets in order; each step is journalled before and after it runs.
A version already servable everywhere is a success that changes nothing. When a runtime fails,
what the deploy did in the others is undone (in reverse order), and the result says, runtime by
runtime, what happened. A deploy interrupted before it finished (its journal is still
"in-progress") is resumed by calling it again with the same request: steps already done are
kept, and a later rollback still undoes them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from gateway.errors import Conflict, InvalidInput
from gateway.runtimes.journal import Entry, Journal, Step
from gateway.runtimes.results import (
    Action,
    DeployRequest,
    DeployResult,
    RuntimeOutcome,
    StepFailed,
    Target,
    TFServingTarget,
    TorchServeTarget,
)
from gateway.runtimes.tfserving import TFServingRuntime
from gateway.runtimes.torchserve import TorchServeRuntime

log = logging.getLogger(__name__)
LOCK_WAIT_S = 5.0

AnyRuntime = TorchServeRuntime | TFServingRuntime


class Orchestrator:
    def __init__(self, state_dir: Path, runtimes: Mapping[str, AnyRuntime]) -> None:
        """``runtimes`` by backend name (see :func:`gateway.runtimes.setup.runtimes_for`)."""
        self.journal = Journal(state_dir)
        self._runtimes = dict(runtimes)

    async def close(self) -> None:
        for runtime in self._runtimes.values():
            await runtime.close()

    def _runtime(self, target: Target) -> AnyRuntime:
        runtime = self._runtimes.get(target.backend)
        if runtime is None or runtime.kind != target.runtime:
            known = ", ".join(f"{n} ({r.kind})" for n, r in sorted(self._runtimes.items()))
            raise InvalidInput(
                f"no {target.runtime} backend named {target.backend!r} (known: {known or 'none'})"
            )
        return runtime

    async def deploy(self, request: DeployRequest) -> DeployResult:
        if not request.targets:
            raise InvalidInput("a deploy needs at least one runtime to deploy into")
        for target in request.targets:
            self._runtime(target)
        async with self.journal.locked(LOCK_WAIT_S):
            entry = self.journal.load(request.model, request.version)
            resumed = (
                entry is not None and entry.status == "in-progress" and entry.operation == "deploy"
            )
            if entry is not None and resumed and entry.request != request.as_dict():
                raise Conflict(
                    f"an interrupted {entry.operation} of {request.model} version "
                    f"{request.version} with other arguments is in the journal: repeat that "
                    "one, or undeploy the version"
                )
            if entry is None or not resumed:
                entry = Entry("deploy", request.model, request.version, request.as_dict())
                self.journal.save(entry)
            return await self._deploy(request, entry, resumed)

    async def _deploy(self, request: DeployRequest, entry: Entry, resumed: bool) -> DeployResult:
        outcomes: dict[str, RuntimeOutcome] = {}
        for index, target in enumerate(request.targets):
            step = entry.steps.get(target.backend)
            if step is not None and step.phase == "done":
                outcomes[target.backend] = _outcome(target, step, resumed=True)
                continue
            failure = await self._step(request, entry, target)
            if failure is None:
                outcomes[target.backend] = _outcome(target, entry.steps[target.backend])
                continue
            if target.backend in entry.steps:  # undo whatever it did before it failed
                undone = await self._undo(request, entry, target)
                failure = replace(failure, detail=f"{failure.detail}; then {undone.detail}")
            outcomes[target.backend] = failure
            for later in request.targets[index + 1 :]:
                outcomes[later.backend] = RuntimeOutcome(
                    later.backend, later.runtime, "not-attempted"
                )
            for earlier in reversed(request.targets[:index]):
                outcomes[earlier.backend] = await self._undo(request, entry, earlier)
            entry.status = "rolled-back"
            self.journal.save(entry)
            message = f"{target.runtime} {target.backend!r} failed: {failure.detail}"
            return self._result(request, outcomes, ok=False, resumed=resumed, message=message)
        entry.status = "done"
        self.journal.save(entry)
        return self._result(request, outcomes, ok=True, resumed=resumed)

    async def _step(
        self, request: DeployRequest, entry: Entry, target: Target
    ) -> RuntimeOutcome | None:
        """Run one runtime's deploy; None when it succeeded, else the failed outcome."""
        runtime = self._runtime(target)
        model = request.backend_model(target)
        started = time.monotonic()
        try:
            step = entry.steps.get(target.backend)
            if step is None:
                before = await runtime.observe(model, request.version)
                entry.steps[target.backend] = step = Step("started", before)
                self.journal.save(entry)
            detail = await _deploy_into(runtime, target, model, request.version)
        except StepFailed as error:
            seconds = time.monotonic() - started
            log.warning(
                "deploy of %s/%s into %s failed: %s", model, request.version, target.backend, error
            )
            return RuntimeOutcome(target.backend, target.runtime, "failed", seconds, str(error))
        step.phase, step.detail = "done", detail
        step.seconds = time.monotonic() - started
        self.journal.save(entry)
        return None

    async def _undo(self, request: DeployRequest, entry: Entry, target: Target) -> RuntimeOutcome:
        """Undo what this deploy did in one runtime (nothing, if the version was there before)."""
        runtime = self._runtime(target)
        step = entry.steps[target.backend]
        if step.phase == "done" and not step.detail:
            return RuntimeOutcome(
                target.backend, target.runtime, "already-there", step.seconds, "left as it was"
            )
        started = time.monotonic()
        try:
            detail = await runtime.undo(request.backend_model(target), request.version, step.before)
        except StepFailed as error:
            seconds = time.monotonic() - started
            return RuntimeOutcome(
                target.backend, target.runtime, "rollback-failed", seconds, str(error)
            )
        step.phase = "undone"
        self.journal.save(entry)
        seconds = time.monotonic() - started
        detail = f"rolled back: {detail}" if detail else "rolled back: nothing had changed"
        return RuntimeOutcome(target.backend, target.runtime, "rolled-back", seconds, detail)

    def _result(
        self,
        request: DeployRequest,
        outcomes: dict[str, RuntimeOutcome],
        ok: bool,
        resumed: bool,
        message: str = "",
    ) -> DeployResult:
        ordered = tuple(outcomes[target.backend] for target in request.targets)
        return DeployResult(
            "deploy",
            request.model,
            request.version,
            ok,
            ordered,
            tuple(request.variants()) if ok else (),
            resumed,
            message,
        )

    async def undeploy(self, request: DeployRequest, drop_labels: bool = False) -> DeployResult:
        """Take the version out of every runtime the request names, last target first; a
        failure stops there. Idempotent: a version already gone is "absent"."""
        for target in request.targets:
            self._runtime(target)
        async with self.journal.locked(LOCK_WAIT_S):
            entry = Entry("undeploy", request.model, request.version, request.as_dict())
            self.journal.save(entry)
            outcomes: list[RuntimeOutcome] = []
            for target in reversed(request.targets):  # TF Serving's refusals come first
                if outcomes and outcomes[-1].action == "failed":
                    outcomes.append(RuntimeOutcome(target.backend, target.runtime, "not-attempted"))
                    continue
                outcomes.append(await self._undeploy_one(request, target, drop_labels))
            ok = all(outcome.action in ("undeployed", "absent") for outcome in outcomes)
            entry.status = "done" if ok else "failed"
            self.journal.save(entry)
            failed = [o.detail for o in outcomes if o.action == "failed"]
            return DeployResult(
                "undeploy",
                request.model,
                request.version,
                ok,
                tuple(reversed(outcomes)),
                message="; ".join(failed),
            )

    async def _undeploy_one(
        self, request: DeployRequest, target: Target, drop_labels: bool
    ) -> RuntimeOutcome:
        runtime = self._runtime(target)
        model = request.backend_model(target)
        started = time.monotonic()
        try:
            if isinstance(runtime, TorchServeRuntime):
                removed = await runtime.unregister(model, request.version)
            else:
                removed = await runtime.undeploy(model, request.version, drop_labels)
        except StepFailed as error:
            return RuntimeOutcome(
                target.backend, target.runtime, "failed", time.monotonic() - started, str(error)
            )
        action: Action = "undeployed" if removed else "absent"
        return RuntimeOutcome(target.backend, target.runtime, action, time.monotonic() - started)


async def _deploy_into(runtime: AnyRuntime, target: Target, model: str, version: str) -> str:
    if isinstance(target, TorchServeTarget) and isinstance(runtime, TorchServeRuntime):
        return await runtime.deploy(target, model, version)
    if isinstance(target, TFServingTarget) and isinstance(runtime, TFServingRuntime):
        return await runtime.deploy(target, model, version)
    raise StepFailed(f"backend {target.backend!r} is not a {target.runtime} backend")


def _outcome(
    target: TorchServeTarget | TFServingTarget, step: Step, resumed: bool = False
) -> RuntimeOutcome:
    action: Action = "deployed" if step.detail else "already-there"
    detail = step.detail + (" (by the interrupted call)" if resumed and step.detail else "")
    return RuntimeOutcome(target.backend, target.runtime, action, step.seconds, detail)
