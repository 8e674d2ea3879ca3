"""Every backend client's circuit breaker: made with the client (from its config), so a client
kept across a routing-table swap keeps its breaker, and a new one starts with its own."""

from __future__ import annotations

from collections.abc import Callable

from gateway.backends.base import Backend
from gateway.config import AnyBackendConfig, CircuitBreakers
from gateway.limits.breaker import CircuitBreaker

DEFAULT = CircuitBreakers()


def slots(config: AnyBackendConfig) -> int:
    """Calls in flight at once: ``max_requests``, and for REST no more than the pool's
    connections, so that every wait is in the breaker's queue (bounded, and counted)."""
    limit = config.circuit_breakers.max_requests
    if config.protocol == "rest":
        return min(limit, config.max_connections)
    return limit


class Breakers:
    def __init__(self, on_shed: Callable[[str, str], None] | None = None) -> None:
        self._on_shed = on_shed
        self._by_client: dict[int, CircuitBreaker] = {}

    def add(self, client: Backend, config: AnyBackendConfig) -> None:
        self._by_client[id(client)] = CircuitBreaker(
            client.name,
            slots(config),
            config.circuit_breakers.max_pending_requests,
            on_shed=self._on_shed,
            adaptive=config.circuit_breakers.adaptive_concurrency,
        )

    def remove(self, client: Backend) -> None:
        self._by_client.pop(id(client), None)

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
