"""Carrying out an action through the admin API: read the model, change what differs from the
targets, one variant at a time, in an order that never gives the candidates more than their
target share on the way.

The order: candidates losing traffic first (a rollback stops their traffic with its first call),
then the others gaining, the candidates gaining, the others losing. Each intermediate split
still has a variant with a weight (the gateway refuses a model without one). Shadowing is turned
off before any weight moves and on after. An action is idempotent: after a partial failure,
applying it again makes only the changes still missing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from gateway.rollout.admin_client import AdminError
from gateway.rollout.decide import ActionResult
from gateway.rollout.state import Action, ShadowTarget, Target, VariantState


class AdminApi(Protocol):
    def variants(self, model: str) -> tuple[list[VariantState], str]: ...

    def patch_variant(self, model: str, variant: str, changes: dict[str, Any]) -> str: ...

    def set_shadow(self, model: str, shadow: ShadowTarget) -> str: ...


Change = tuple[str, dict[str, Any], str]  # (variant, PATCH body, description)


def _change(current: VariantState, target: Target) -> Change | None:
    body: dict[str, Any] = {}
    said = []
    if current.weight != target.weight:
        body["weight"] = target.weight
        said.append(f"weight {current.weight} -> {target.weight}")
    if current.enabled != target.enabled:
        body["enabled"] = target.enabled
        said.append(f"enabled {current.enabled} -> {target.enabled}")
    if tuple(current.labels) != tuple(target.labels):
        body["labels"] = list(target.labels)
        said.append(f"labels {list(current.labels)} -> {list(target.labels)}")
    return (current.name, body, f"{current.name}: {', '.join(said)}") if body else None


def _takes_traffic(variant: VariantState | Target) -> bool:
    return variant.enabled and variant.weight > 0


def plan_changes(
    current: Sequence[VariantState], targets: Mapping[str, Target], candidates: Sequence[str]
) -> list[Change]:
    """The PATCHes that take ``current`` to ``targets``, in a safe order."""
    by_name = {v.name: v for v in current}
    missing = [name for name in targets if name not in by_name]
    if missing:
        raise AdminError(f"the model has no variant {', '.join(missing)} any more")
    groups: dict[tuple[bool, bool], list[Change]] = {}
    for name, target in targets.items():
        change = _change(by_name[name], target)
        if change is None:
            continue
        now, then = by_name[name], target
        gains = (then.weight if then.enabled else 0) >= (now.weight if now.enabled else 0)
        groups.setdefault((name in candidates, gains), []).append(change)
    candidate_losses = groups.get((True, False), [])
    other_gains = groups.get((False, True), [])
    first = [*candidate_losses, *other_gains]
    takes = {name: _takes_traffic(variant) for name, variant in by_name.items()}
    for name, _, _ in candidate_losses:
        takes[name] = _takes_traffic(targets[name])
    if not any(takes.values()):
        first = [*other_gains, *candidate_losses]
    return [*first, *groups.get((True, True), []), *groups.get((False, False), [])]


def _shadow_off(admin: AdminApi, model: str, shadow: ShadowTarget) -> str:
    """Shadowing off; a gateway without the shadow endpoint (404) has none to turn off, or a
    rollback there could never finish."""
    try:
        admin.set_shadow(model, shadow)
    except AdminError as error:
        if error.status != 404 or "no such endpoint" not in str(error):
            raise
        return "shadow off (the gateway has no shadow traffic)"
    return "shadow off"


def apply(admin: AdminApi, model: str, action: Action, candidates: Sequence[str]) -> ActionResult:
    """Make the model look like ``action`` says; what was done before a failure is returned."""
    applied: list[str] = []
    shadow = action.shadow
    try:
        if shadow is not None and not shadow.variants:
            applied.append(_shadow_off(admin, model, shadow))
        current, _ = admin.variants(model)
        for variant, body, description in plan_changes(current, action.targets, candidates):
            admin.patch_variant(model, variant, body)
            applied.append(description)
        if shadow is not None and shadow.variants:
            admin.set_shadow(model, shadow)
            applied.append(f"shadow {', '.join(shadow.variants)} at {shadow.percent:g}%")
    except AdminError as error:
        return ActionResult(ok=False, applied=tuple(applied), error=str(error))
    return ActionResult(ok=True, applied=tuple(applied))
