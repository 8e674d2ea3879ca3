"""The ``tracing``, ``access_log`` and ``logging`` sections of the gateway's configuration.

Tracing keys left unset fall back to OpenTelemetry's standard environment variables
(``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, ``OTEL_TRACES_SAMPLER``, ...), which
:mod:`gateway.tracing.settings` reads; a key set here wins over them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Sampler = Literal[
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
]
"""OpenTelemetry's sampler names (``OTEL_TRACES_SAMPLER``)."""

LogLevel = Literal["debug", "info", "warning", "error"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TracingConfig(_Section):
    """OpenTelemetry traces, exported over OTLP/gRPC. Off unless an endpoint is configured
    (here or in ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT``)."""

    endpoint: str | None = None
    """The OTLP/gRPC collector, ``http://host:4317`` (plaintext) or ``https://...`` (TLS)."""
    sampler: Sampler | None = None
    """Which requests are recorded; default ``OTEL_TRACES_SAMPLER``, else
    ``parentbased_traceidratio`` (follow the caller's ``traceparent`` flag, else ``ratio``)."""
    ratio: float | None = Field(default=None, ge=0.0, le=1.0)
    """The fraction of new traces recorded by the ``*traceidratio`` samplers; default
    ``OTEL_TRACES_SAMPLER_ARG``, else 1.0."""
    service_name: str | None = None
    """The ``service.name`` resource attribute; default ``OTEL_SERVICE_NAME``, else ``gateway``."""
    max_queue_size: int | None = Field(default=None, ge=1)
    """Spans held for export before new ones are dropped; default ``OTEL_BSP_MAX_QUEUE_SIZE``,
    else 2048."""
    max_export_batch_size: int | None = Field(default=None, ge=1)
    """Spans per export call; default ``OTEL_BSP_MAX_EXPORT_BATCH_SIZE``, else 512."""
    schedule_delay_ms: int | None = Field(default=None, ge=1)
    """Longest wait between exports; default ``OTEL_BSP_SCHEDULE_DELAY``, else 5000."""
    export_timeout_s: float | None = Field(default=None, gt=0)
    """Deadline of one export call; default ``OTEL_EXPORTER_OTLP_TRACES_TIMEOUT``, else 10."""


class AccessLogConfig(_Section):
    """One JSON line per inference request, on the ``gateway.access`` logger (level info)."""

    enabled: bool = True
    """Off: no line for any request."""
    errors: bool = True
    """Log every request answered with a status of 400 or more (499: the client left)."""
    success_ratio: float = Field(default=0.01, ge=0.0, le=1.0)
    """The fraction of successful requests logged, chosen at random."""
    slow_ms: float | None = Field(default=None, gt=0)
    """Also log every successful request slower than this, end to end."""
    path: str | None = None
    """Append the lines to this file instead of standard error."""


class LoggingConfig(_Section):
    """The process log (its own level is ``gateway serve --log-level``)."""

    third_party_level: LogLevel = "warning"
    """The least severe level that libraries (grpc, asyncio, uvicorn, OpenTelemetry...) log:
    their debug chatter stays out of the gateway's log even at ``--log-level debug``."""
