"""A gRPC backend's reply kept as the bytes it came in, decoded into tensors only on demand."""

from __future__ import annotations

from collections.abc import Callable

from gateway.backends.base import BackendModel
from gateway.errors import BackendError, InvalidInput
from gateway.inference import InferRequest, InferResponse, Payload, Tensor


def undecoded_response(
    target: BackendModel,
    request: InferRequest,
    reply: bytes,
    format: str,
    decode: Callable[[bytes], list[Tensor]],
    backend: str,
) -> InferResponse:
    """A front end of the same protocol forwards ``reply``; any other decodes it, and a reply
    ``decode`` cannot read (InvalidInput) is the backend's fault."""

    async def outputs() -> list[Tensor]:
        try:
            return decode(reply)
        except InvalidInput as error:
            raise BackendError(f"backend {backend!r}: {error.message}") from None

    return InferResponse(
        target.name,
        target.version,
        decode_outputs=outputs,
        id=request.id,
        payload=Payload(format, reply),
    )
