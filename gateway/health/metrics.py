"""Ejections and their ends as metrics (the detector logs them itself)."""

from __future__ import annotations

from gateway.health.outlier import EjectionListener, Key
from gateway.metrics import GatewayMetrics


class EjectionMetrics(EjectionListener):
    def __init__(self, metrics: GatewayMetrics) -> None:
        self._metrics = metrics

    def ejected(self, key: Key, times: int, duration_s: float) -> None:
        self._metrics.ejected(key[0], key[1])

    def returned(self, key: Key, reason: str) -> None:
        self._metrics.returned(key[0], key[1], reason)
