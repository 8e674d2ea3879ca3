"""A gRPC backend's reply kept as the bytes it came in, decoded into tensors only on demand."""

from __future__ import annotations

from collections.abc import Callable

from gateway.backends.base import BackendModel
from gateway.backends.boundary import reply_boundary
from gateway.inference import InferRequest, InferResponse, Payload, Tensor


def undecoded_response(
    target: BackendModel,
    request: InferRequest,
    reply: bytes,
    format: str,
    decode: Callable[[bytes], list[Tensor]],
    backend: str,
    what: str,
) -> InferResponse:
    """A front end of the same protocol forwards ``reply``; any other decodes it, and a reply
    ``decode`` cannot read is the backend's fault (``what`` names the message in the error)."""

    async def outputs() -> list[Tensor]:
        with reply_boundary(backend, what):
            return decode(reply)

    return InferResponse(
        target.name,
        target.version,
        decode_outputs=outputs,
        id=request.id,
        payload=Payload(format, reply),
    )
