"""What a gRPC handler sees of one call: routing hints and its request record.

Handlers take the request's bytes and return the reply's bytes: they parse and build messages
with the codecs, so a malformed message is an INVALID_ARGUMENT that names the problem.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc
from google.protobuf.message import DecodeError, Message

from gateway.errors import InvalidInput
from gateway.metrics import RequestRecord
from gateway.service import RouteHints

# A deadline that has (nearly) passed still reaches the backend client as a tiny timeout, which
# fails fast as DEADLINE_EXCEEDED; zero or negative timeouts mean "none" to some clients.
MIN_TIMEOUT_S = 0.001

MessageT = TypeVar("MessageT", bound=Message)


class Call:
    """One RPC: its context, the names of the routing headers, and (for inference) its record."""

    __slots__ = ("_context", "_pin_key", "_record", "_sticky_key")

    def __init__(
        self,
        context: grpc.aio.ServicerContext,
        sticky_key: str,
        pin_key: str,
        record: RequestRecord | None,
    ) -> None:
        self._context = context
        self._sticky_key = sticky_key
        self._pin_key = pin_key
        self._record = record

    @property
    def record(self) -> RequestRecord:
        assert self._record is not None, "only inference methods keep a record"
        return self._record

    def hints(self, timeout_s: float | None = None) -> RouteHints:
        """Pin and sticky key from the invocation metadata; the client's deadline, or
        ``timeout_s`` if that is shorter, bounds the backend call."""
        pin: str | None = None
        sticky: str | None = None
        for key, value in self._context.invocation_metadata() or ():
            if key == self._sticky_key:
                sticky = value
            elif key == self._pin_key:
                pin = value
        remaining = self._context.time_remaining()
        if remaining is not None:
            remaining = max(remaining, MIN_TIMEOUT_S)
            timeout_s = remaining if timeout_s is None else min(timeout_s, remaining)
        return RouteHints(pin=pin, sticky_key=sticky, timeout_s=timeout_s)


Handler = Callable[[bytes, Call], Awaitable[bytes]]


@dataclass(frozen=True, slots=True)
class Method:
    """One RPC of a service: its handler and, for inference, the metrics ``protocol`` label."""

    handler: Handler
    protocol: str | None = None


def parse(message_type: type[MessageT], body: bytes) -> MessageT:
    """Parse ``body`` as ``message_type``; a malformed message is the client's error."""
    try:
        return message_type.FromString(body)
    except DecodeError as error:
        raise InvalidInput(f"not a valid {message_type.DESCRIPTOR.name}: {error}") from None
