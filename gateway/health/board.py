"""One answer to "may this variant take unpinned traffic now": ready, and not ejected.

Readiness probes write ``set_ready``; the attempt loop reports each backend call's outcome. A
target nobody has probed yet counts as healthy: a fresh worker routes as configured until its
first sweep says otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from gateway.backends.base import BackendModel
from gateway.errors import BackendError, BackendTimeout, BackendUnavailable, GatewayError
from gateway.health.outlier import EjectionListener, Key, OutlierDetector
from gateway.routing.router import ModelRoute, Variant

BACKEND_FAULTS = (BackendError, BackendUnavailable, BackendTimeout)
"""What counts against a target: 5xx and UNAVAILABLE answers, unreachable, too slow."""


def key_of(variant: Variant) -> Key:
    return (variant.backend.name, variant.target)


class HealthBoard:
    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        listener: EjectionListener | None = None,
    ) -> None:
        self.outliers = OutlierDetector(clock, listener)
        self.not_ready: set[Key] = set()

    def predicate(self) -> Callable[[Variant], bool] | None:
        """``healthy``, or None while every target is (the router's fast path)."""
        if self.not_ready or self.outliers.ejected:
            return self.healthy
        return None

    def healthy(self, variant: Variant) -> bool:
        return self.healthy_key((variant.backend.name, variant.target))

    def healthy_key(self, key: Key) -> bool:
        return key not in self.not_ready and not self.outliers.is_ejected(key)

    def set_ready(self, backend: str, target: BackendModel, ready: bool) -> None:
        """A probe's verdict; a passing one also ends an ejection (Envoy's
        ``successful_active_health_check_uneject_host``)."""
        key = (backend, target)
        if ready:
            self.not_ready.discard(key)
            self.outliers.readiness_passed(key)
        else:
            self.not_ready.add(key)

    def succeeded(self, variant: Variant) -> None:
        if self.outliers.failures:
            self.outliers.succeeded((variant.backend.name, variant.target))

    def failed(self, variant: Variant, route: ModelRoute, error: GatewayError) -> bool:
        """Count a failed call if it was the backend's fault; True when that ejects it."""
        if not isinstance(error, BACKEND_FAULTS):
            return False
        siblings = [key_of(v) for v in route.variants.values()]
        return self.outliers.failed(
            key_of(variant), variant.resilience.outlier_detection, siblings, self.healthy_key
        )
