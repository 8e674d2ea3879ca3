"""Load shedding: per-backend circuit breakers around the backend call, and the front ends'
per-worker concurrency limit."""

from gateway.limits.breaker import CircuitBreaker
from gateway.limits.breakers import Breakers
from gateway.limits.concurrency import ConcurrencyLimit

__all__ = ["Breakers", "CircuitBreaker", "ConcurrencyLimit"]
