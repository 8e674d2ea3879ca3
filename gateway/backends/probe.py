"""Readiness probes: their own lane to the backend, and a verdict that tells slow from failed.

Probes (and metadata lookups) never queue behind inference: REST backends send them over a
small pool of their own (``CONTROL_CONNECTIONS``), gRPC backends over a channel of their own
(its own TCP connection, so a full inference connection's streams cannot hold it up). A probe
that gets no answer within ``PROBE_TIMEOUT_S`` says so (``None``) instead of "not ready": under
load a healthy backend can be slow, and :mod:`gateway.readiness` decides how many such misses in
a row mean it is gone.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from gateway.errors import BackendTimeout, GatewayError

PROBE_TIMEOUT_S = 2.0
CONTROL_CONNECTIONS = 4
"""Connections per worker and backend for probes and metadata, beside the inference pool."""
CONTROL_CHANNEL_OPTIONS: list[tuple[str, Any]] = [("grpc.use_local_subchannel_pool", 1)]
"""A gRPC channel with these shares no connection with the backend's inference channel."""


async def probe(check: Awaitable[bool]) -> bool | None:
    """The check's answer; False when the backend failed or answered nonsense, None when it
    did not answer in time. Never raises a gateway error."""
    try:
        return await check
    except BackendTimeout:
        return None
    except GatewayError:
        return False
