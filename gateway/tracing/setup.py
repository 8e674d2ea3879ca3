"""The worker's tracer, or None when tracing is off (then the SDK is never imported)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from gateway.config_observability import TracingConfig
from gateway.tracing.settings import resolve

if TYPE_CHECKING:
    from gateway.tracing.tracer import RequestTracer


def request_tracer(
    section: TracingConfig, env: Mapping[str, str] = os.environ
) -> RequestTracer | None:
    """Raises :class:`~gateway.tracing.settings.TracingSettingsError` for unusable OTEL_*."""
    settings = resolve(section, env)
    if settings is None:
        return None
    from gateway.tracing.export import SpanSink
    from gateway.tracing.tracer import RequestTracer

    return RequestTracer(settings, SpanSink(settings))
