"""What decoding a request may allocate, checked from shapes alone, before anything is allocated.

Every decoder validates a tensor's shape (at most ``MAX_RANK`` dimensions, none negative) and
charges its decoded size (elements x item size, after any broadcast) to the request's
:class:`Budget`, which the sizes of all its inputs together may not exceed. The checks are
arithmetic on the shape: their cost does not grow with the data.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Iterable

from gateway.errors import InvalidInput, PayloadTooLarge
from gateway.inference import DATATYPES

LIMIT_KEY = "server.max_request_bytes"

MAX_RANK = 32
"""numpy 1.26 arrays have at most 32 dimensions (numpy 2: 64); no model takes more."""

BYTES_ITEM_SIZE = 8
"""What a BYTES element costs in an object array (its pointer). The values' own bytes come from
the body, except when one value fills a whole tensor: then each element counts its length too."""


_BRIEF = reprlib.Repr()
_BRIEF.maxlevel, _BRIEF.maxlist, _BRIEF.maxdict = 3, 8, 4
_BRIEF.maxstring = _BRIEF.maxother = _BRIEF.maxlong = 40


def checked_shape(where: str, dims: Iterable[int]) -> tuple[int, ...]:
    """``dims`` as a shape, refused (InvalidInput) if it has too many or negative dimensions."""
    shape = tuple(dims)
    if len(shape) > MAX_RANK:
        raise rank_error(where, len(shape))
    if shape and min(shape) < 0:
        raise InvalidInput(f"{where}: shape {list(shape)} has a negative dimension")
    return shape


def rank_error(where: str, rank: int) -> InvalidInput:
    return InvalidInput(f"{where}: shape has {rank} dimensions, at most {MAX_RANK} are supported")


def brief(value: object) -> str:
    """A bounded ``repr`` of a client's value for an error message (reprlib cuts long strings,
    lists and deep nesting)."""
    return _BRIEF.repr(value)


ITEM_SIZES: dict[str, int] = {
    name: BYTES_ITEM_SIZE if name == "BYTES" else dtype.itemsize
    for name, dtype in DATATYPES.items()
}
"""Bytes per element of each Open Inference Protocol datatype, as the gateway holds it."""


class Budget:
    """The bytes a request's decoded tensors may take, charged tensor by tensor."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def charge(self, where: str, shape: tuple[int, ...], datatype: str, extra: int = 0) -> int:
        """Charge a checked shape of ``datatype`` (``extra`` bytes more per element); returns
        the element count. PayloadTooLarge names the input and the limit."""
        count = math.prod(shape)
        size = count * (ITEM_SIZES[datatype] + extra)
        if size > self.limit - self.used:
            described = f"{where}: shape {list(shape)} of {datatype} takes {size} bytes"
            if self.used:
                described += f", {self.used + size} with the inputs before it"
            raise PayloadTooLarge(f"{described}, over the {self.limit}-byte limit ({LIMIT_KEY})")
        if not count and shape and max(shape) > self.limit:
            # An empty tensor, but no real one has such a dimension (nor numpy).
            raise PayloadTooLarge(
                f"{where}: dimension {max(shape)} of shape {list(shape)} is larger than the "
                f"{self.limit}-byte limit ({LIMIT_KEY})"
            )
        self.used += size
        return count
