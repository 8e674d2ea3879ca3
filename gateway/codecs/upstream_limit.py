"""Bodies the gateway builds for a backend, kept within the limit it enforces on what it receives.

JSON takes 2-24 characters per element, so a tensor that decoded within the limit may still not
fit once written out. Each tensor is costed first from its shape and dtype alone (an upper bound):
within the limit, it is serialized as usual, in one orjson call. Otherwise it is serialized in
slices that are counted as they are made, and refused as soon as the count passes the limit, so
a refusal never holds more than the limit in memory. The finished body is checked exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from gateway.codecs.limits import LIMIT_KEY
from gateway.errors import PayloadTooLarge
from gateway.inference import Tensor

NUMPY = orjson.OPT_SERIALIZE_NUMPY
CHUNK_ELEMENTS = 1 << 16

# The longest text orjson writes for one element of each dtype (by its type character),
# measured over every float16 and the float32/float64 extremes, plus a separator.
_MAX_CHARS: dict[str, int] = {
    "?": 5 + 1,
    "b": 4 + 1,
    "B": 3 + 1,
    "h": 6 + 1,
    "H": 5 + 1,
    "i": 11 + 1,
    "I": 10 + 1,
    "l": 20 + 1,
    "L": 20 + 1,
    "q": 20 + 1,
    "Q": 20 + 1,
    "e": 16 + 1,
    "f": 16 + 1,
    "d": 24 + 1,
}


class BodyBudget:
    """What one outgoing body may still take; ``what`` names the body in refusals."""

    __slots__ = ("limit", "used", "what")

    def __init__(self, limit: int, what: str) -> None:
        self.limit = limit
        self.used = 0
        self.what = what

    def spend(self, size: int, name: str) -> None:
        """Charge ``size`` bytes for input ``name``; PayloadTooLarge past the limit."""
        self.used += size
        if self.used > self.limit:
            raise PayloadTooLarge(
                f"input {name!r}: {self.what} would take more than the {self.limit}-byte "
                f"limit ({LIMIT_KEY})"
            )

    def spend_raw(self, tensor: Tensor, overhead: int) -> None:
        """Charge a tensor written as raw bytes: its values, plus ``overhead`` bytes per element
        for BYTES (a length prefix)."""
        if tensor.datatype == "BYTES":
            self.spend(bytes_lower_bound(tensor.data.flat, overhead), tensor.name)
        else:
            self.spend(tensor.data.nbytes, tensor.name)

    def finish(self, body: bytes) -> bytes:
        """The whole body, checked exactly."""
        self.check(len(body))
        return body

    def check(self, size: int) -> None:
        """Refuse a finished body of ``size`` bytes over the limit."""
        if size > self.limit:
            raise PayloadTooLarge(
                f"{self.what} takes {size} bytes, over the {self.limit}-byte limit ({LIMIT_KEY})"
            )


def json_upper_bound(array: np.ndarray[Any, Any]) -> int:
    """At least as many bytes as orjson writes for ``array``, from its shape and dtype alone.

    Each element takes at most ``_MAX_CHARS``; a list takes its brackets and a comma, and of
    lists there are one plus at most ``size`` per dimension but the last (counted exactly only
    for an empty array, whose lists may outnumber its elements).
    """
    size, rank = array.size, array.ndim
    if size:
        return size * (_MAX_CHARS[array.dtype.char] + 3 * rank - 3) + 3
    lists = rows = 1
    for length in array.shape[:-1]:
        rows *= length
        lists += rows
    return 3 * lists


def json_numbers(array: np.ndarray[Any, Any], budget: BodyBudget | None, name: str) -> Any:
    """A numeric array (of input ``name``) as a JSON value: nested lists, as orjson writes
    them, within ``budget`` if there is one.

    Returns the array itself when it fits even at its upper bound, else pre-serialized text.
    """
    if array.ndim == 0:  # orjson writes no 0-d arrays: a one-element list, unwrapped
        text = orjson.dumps(array.reshape(1), option=NUMPY)[1:-1]
        if budget is not None:
            budget.spend(len(text), name)
        return orjson.Fragment(text)
    if budget is None:
        return array
    bound = json_upper_bound(array)
    if budget.used + bound <= budget.limit:  # the common case: the array as it is
        budget.used += bound
        return array
    array = np.ascontiguousarray(array)  # (tensors are; slices of it must be)
    out = bytearray()
    _write(array, budget, name, out)
    return orjson.Fragment(bytes(out))


def _write(array: np.ndarray[Any, Any], budget: BodyBudget, name: str, out: bytearray) -> None:
    """Append the JSON of a C-contiguous array to ``out`` a slice at a time, counting it.

    orjson's result for a slice holds about three times its length, so each is copied into
    ``out`` and dropped at once.
    """
    if array.size <= CHUNK_ELEMENTS:
        text = orjson.dumps(array, option=NUMPY)
        budget.spend(len(text), name)
        out += text
        return
    budget.spend(2, name)
    out += b"["
    if array.ndim == 1:
        for start in range(0, array.shape[0], CHUNK_ELEMENTS):
            _append(
                orjson.dumps(array[start : start + CHUNK_ELEMENTS], option=NUMPY),
                budget,
                name,
                out,
            )
    else:
        rows = max(1, CHUNK_ELEMENTS // (array.size // array.shape[0]))
        for start in range(0, array.shape[0], rows):
            block = array[start : start + rows]
            if block.size > CHUNK_ELEMENTS:  # a single row, larger than a slice by itself
                _write(block[0], budget, name, out)
                budget.spend(1, name)
                out += b","
            else:
                _append(orjson.dumps(block, option=NUMPY), budget, name, out)
    out[-1:] = b"]"


def _append(text: bytes, budget: BodyBudget, name: str, out: bytearray) -> None:
    """A slice's elements without its brackets, and a comma."""
    budget.spend(len(text) - 1, name)
    out += memoryview(text)[1:-1]
    out += b","


def bytes_lower_bound(items: Any, overhead: int) -> int:
    """The bytes a BYTES tensor's values take at least, plus ``overhead`` per element."""
    total = 0
    count = 0
    for item in items:
        total += len(item) if isinstance(item, bytes) else len(str(item))
        count += 1
    return total + overhead * count
