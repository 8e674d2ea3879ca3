"""The effective tracing settings: the ``tracing`` section first, then the ``OTEL_*`` variables.

A pure function of (section, environment), so every precedence rule has a unit test.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import get_args

from gateway.config_observability import Sampler, TracingConfig

DEFAULT_SAMPLER = "parentbased_traceidratio"
DEFAULT_SERVICE = "gateway"
SAMPLERS: tuple[str, ...] = get_args(Sampler)


class TracingSettingsError(ValueError):
    """An ``OTEL_*`` variable the gateway cannot honour; the message names it."""


@dataclass(frozen=True, slots=True)
class TraceSettings:
    endpoint: str
    parent_based: bool
    """Follow the caller's sampled flag when a request carries a ``traceparent``."""
    ratio: float
    """The fraction of new traces recorded (0 or 1 for the always_* samplers)."""
    service_name: str
    max_queue_size: int | None
    max_export_batch_size: int | None
    schedule_delay_ms: int | None
    export_timeout_s: float | None


def resolve(section: TracingConfig, env: Mapping[str, str]) -> TraceSettings | None:
    """None when tracing is off: no endpoint anywhere, ``OTEL_SDK_DISABLED=true``, or (for an
    endpoint from the environment) ``OTEL_TRACES_EXPORTER=none``."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    endpoint = section.endpoint
    if endpoint is None:
        exporters = {e.strip().lower() for e in env.get("OTEL_TRACES_EXPORTER", "otlp").split(",")}
        if "otlp" not in exporters:
            return None
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        if not endpoint:
            return None
    for variable in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        protocol = env.get(variable)
        if protocol is not None:
            if protocol.strip() != "grpc":
                raise TracingSettingsError(
                    f"{variable}={protocol!r}: the gateway exports OTLP over gRPC only"
                )
            break
    sampler = section.sampler or env.get("OTEL_TRACES_SAMPLER", DEFAULT_SAMPLER).strip().lower()
    if sampler not in SAMPLERS:
        raise TracingSettingsError(
            f"OTEL_TRACES_SAMPLER={sampler!r}: use one of {', '.join(SAMPLERS)}"
        )
    return TraceSettings(
        endpoint=endpoint,
        parent_based=sampler.startswith("parentbased_"),
        ratio=_ratio(sampler, section.ratio, env),
        service_name=section.service_name or env.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE,
        max_queue_size=section.max_queue_size,
        max_export_batch_size=section.max_export_batch_size,
        schedule_delay_ms=section.schedule_delay_ms,
        export_timeout_s=section.export_timeout_s,
    )


def _ratio(sampler: str, configured: float | None, env: Mapping[str, str]) -> float:
    if sampler.endswith("always_on"):
        return 1.0
    if sampler.endswith("always_off"):
        return 0.0
    if configured is not None:
        return configured
    text = env.get("OTEL_TRACES_SAMPLER_ARG")
    if text is None:
        return 1.0
    try:
        ratio = float(text)
    except ValueError:
        ratio = -1.0
    if not 0.0 <= ratio <= 1.0:
        raise TracingSettingsError(
            f"OTEL_TRACES_SAMPLER_ARG={text!r}: a ratio from 0 to 1 is needed"
        )
    return ratio
