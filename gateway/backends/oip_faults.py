"""An Open Inference Protocol server's "no such model" (REST 404, gRPC NOT_FOUND), for both OIP
backends: the variant's backend does not serve that version now (it is not loaded, or not yet),
which is what readiness reports too, so the client gets 503 rather than a bad-upstream 502."""

from __future__ import annotations

from gateway.backends.base import BackendModel
from gateway.errors import BackendUnavailable


def not_serving(backend: str, target: BackendModel, detail: str) -> BackendUnavailable:
    return BackendUnavailable(
        f"backend {backend!r} does not serve {target.name} version {target.version}: {detail}"
    )
