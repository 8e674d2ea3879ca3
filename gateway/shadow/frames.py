"""The messages between a worker and its shadow process, over one unix stream socket.

A frame is a 4-byte little-endian length and a pickle (protocol 5) of a tuple whose first item
says what it is. Both ends are this package, in processes of the same user, parent and child:
pickle is safe here and the cheapest way to carry numpy arrays and the config.

Worker -> shadow process:
  ``("config", GatewayConfig)``  route by this config (first frame, then on every apply);
  ``("jobs", [wire, ...])``      sampled requests to shadow (:func:`.job.wire_of`).
Shadow process -> worker (every ``REPORT_S`` while anything happened):
  ``("report", counts, diffs, examples)``  outcomes by (model, primary, shadow, result), the
  max-abs-diff values by (model, primary, shadow), new ring examples as (model, Example).
"""

from __future__ import annotations

import pickle
import struct
from typing import Any

HEADER = struct.Struct("<I")
MAX_FRAME = 1 << 30


def frame(message: tuple[Any, ...]) -> bytes:
    body = pickle.dumps(message, protocol=5)
    return HEADER.pack(len(body)) + body


class FrameReader:
    """Splits a byte stream into messages."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[Any, ...]]:
        buffer = self._buffer
        buffer += data
        messages: list[tuple[Any, ...]] = []
        start = 0
        while len(buffer) - start >= HEADER.size:
            (length,) = HEADER.unpack_from(buffer, start)
            if length > MAX_FRAME:
                raise ValueError(f"shadow frame of {length} bytes")
            end = start + HEADER.size + length
            if end > len(buffer):
                break
            with memoryview(buffer) as view:
                messages.append(pickle.loads(view[start + HEADER.size : end]))
            start = end
        if start:
            del buffer[:start]
        return messages
