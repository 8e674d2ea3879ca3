"""What shadowing one model means right now: its shadow variants resolved, rates and bounds.

Built from the config and the router's variants; immutable, so the mirror swaps a whole new set
of plans in with one assignment when the configuration changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from gateway.config import GatewayConfig, ShadowConfig
from gateway.routing.router import Router, Variant
from gateway.shadow.compare import Tolerance


@dataclass(frozen=True, slots=True)
class ShadowPlan:
    model: str
    shadows: tuple[Variant, ...]
    percent: float
    timeout_s: float
    tolerance: Tolerance
    max_concurrent: int
    max_queued: int
    values_always: bool = False
    """Whether a shadow of another version must agree on values too (``compare_values``)."""

    def sampled(self, draw: Callable[[], float]) -> bool:
        """Whether one request is shadowed, ``draw`` giving a uniform number in [0, 1)."""
        return self.percent >= 100 or draw() * 100 < self.percent

    def targets(self, primary: Variant) -> list[Variant]:
        """The shadows of one request: every shadow variant but the primary itself."""
        return [v for v in self.shadows if v.name != primary.name]

    def tolerance_for(self, primary: Variant, shadow: Variant) -> Tolerance:
        if self.values_always or shadow.version == primary.version:
            return self.tolerance
        return replace(self.tolerance, values=False)


def plan_for(model: str, shadow: ShadowConfig, variants: Mapping[str, Variant]) -> ShadowPlan:
    return ShadowPlan(
        model=model,
        # A disabled variant gets no traffic, copies included.
        shadows=tuple(variants[name] for name in shadow.variants if variants[name].enabled),
        percent=shadow.percent,
        timeout_s=shadow.timeout_s,
        tolerance=Tolerance(shadow.atol, shadow.rtol, shadow.top_k),
        max_concurrent=shadow.max_concurrent,
        max_queued=shadow.max_queued,
        values_always=shadow.compare_values == "always",
    )


def plans_from(config: GatewayConfig, router: Router) -> dict[str, ShadowPlan]:
    """Every model that shadows (at a positive percentage, to at least one variant)."""
    plans = {}
    for name, model in config.models.items():
        shadow = model.shadow
        if shadow is None or not shadow.variants or shadow.percent <= 0:
            continue
        plans[name] = plan_for(name, shadow, router.model(name).variants)
    return plans
