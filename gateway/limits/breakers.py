"""Every backend client's circuit breaker: made with the client (from its config), so a client
kept across a routing-table swap keeps its breaker, and a new one starts with its own."""

from __future__ import annotations

from collections.abc import Callable

from gateway.backends.base import Backend
from gateway.config import AnyBackendConfig, CircuitBreakers
from gateway.limits.adaptive import GradientLimit
from gateway.limits.breaker import CircuitBreaker
from gateway.limits.loop_lag import LoopLag

DEFAULT = CircuitBreakers()


def slots(config: AnyBackendConfig) -> int:
    """Calls in flight at once: ``max_requests``, and for REST no more than the pool's
    connections, so that every wait is in the breaker's queue (bounded, and counted)."""
    limit = config.circuit_breakers.max_requests
    if config.protocol == "rest":
        return min(limit, config.max_connections)
    return limit


class Breakers:
    """``on_adaptive`` is told (backend, controller) when a backend's adaptive limit changes,
    and (backend, None) when the backend is gone. Only the newest client of a backend name
    reports: one replaced by a changed config drains with its old breaker, unheard."""

    def __init__(
        self,
        on_shed: Callable[[str, str], None] | None = None,
        on_adaptive: Callable[[str, GradientLimit | None], None] | None = None,
    ) -> None:
        self._on_shed = on_shed
        self._on_adaptive = on_adaptive
        self._by_client: dict[int, CircuitBreaker] = {}
        self._reporting: dict[str, CircuitBreaker] = {}
        self._loop_lag = LoopLag()
        """One per worker (one event loop), shared by every backend's adaptive limit."""

    def add(self, client: Backend, config: AnyBackendConfig) -> None:
        name, on_adaptive = client.name, self._on_adaptive
        report = None
        if on_adaptive is not None:

            def report(controller: GradientLimit) -> None:
                reporting = self._reporting.get(name)
                if reporting is not None and reporting.adaptive is controller:
                    on_adaptive(name, controller)

        breaker = self._by_client[id(client)] = CircuitBreaker(
            name,
            slots(config),
            config.circuit_breakers.max_pending_requests,
            on_shed=self._on_shed,
            adaptive=config.circuit_breakers.adaptive_concurrency,
            on_adaptive=report,
            loop_lag=self._loop_lag,
        )
        if on_adaptive is not None:
            self._reporting[name] = breaker
            on_adaptive(name, breaker.adaptive)

    def remove(self, client: Backend) -> None:
        breaker = self._by_client.pop(id(client), None)
        if breaker is not None and self._reporting.get(client.name) is breaker:
            del self._reporting[client.name]
            if self._on_adaptive is not None:
                self._on_adaptive(client.name, None)

    def __getitem__(self, client: Backend) -> CircuitBreaker:
        breaker = self._by_client.get(id(client))
        if breaker is None:  # a client made without its config (tests): Envoy's defaults
            breaker = self._by_client[id(client)] = CircuitBreaker(
                client.name,
                DEFAULT.max_requests,
                DEFAULT.max_pending_requests,
                on_shed=self._on_shed,
            )
        return breaker
