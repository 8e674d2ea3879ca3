"""Tensor values as OIP JSON ``data``: flat or nested lists of numbers, or strings for BYTES."""

from __future__ import annotations

from typing import Any

import numpy as np

from gateway.codecs.json_numbers import as_datatype
from gateway.codecs.upstream_limit import BodyBudget, bytes_lower_bound, json_numbers
from gateway.errors import InvalidInput
from gateway.inference import Tensor


def data_from_json(
    data: Any, datatype: str, shape: tuple[int, ...], count: int, where: str
) -> np.ndarray[Any, Any]:
    """The array of ``data`` (``count`` elements of a checked ``shape``); InvalidInput if not."""
    if datatype == "BYTES":
        flat = _flatten_bytes(data, where)
        if len(flat) != count:
            raise InvalidInput(
                f"{where}: shape {list(shape)} needs {count} values, data has {len(flat)}"
            )
        array = np.empty(count, dtype=object)
        array[:] = flat
        return array.reshape(shape)
    try:
        raw = np.asarray(data)
    except ValueError:  # ragged, or nested deeper than numpy's dimensions
        raise InvalidInput(f"{where}: data must be a (nested) list of numbers") from None
    if raw.size != count:
        raise InvalidInput(
            f"{where}: shape {list(shape)} needs {count} values, data has {raw.size}"
        )
    return as_datatype(raw, datatype, where).reshape(shape)


def _flatten_bytes(data: Any, where: str) -> list[bytes]:
    """Strings of a (nested) list, depth first, without recursion."""
    flat: list[bytes] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, str):
            flat.append(item.encode())
        else:
            raise InvalidInput(f"{where}: BYTES data must be strings")
    return flat


def json_data(tensor: Tensor, budget: BodyBudget | None = None) -> Any:
    """A tensor's values as flat JSON ``data``; with ``budget``, refused past its limit."""
    data = tensor.data
    if tensor.datatype == "BYTES":
        if budget is not None:  # quotes and a comma each, at least
            budget.spend(bytes_lower_bound(data.flat, 3), tensor.name)
        return [
            item.decode(errors="replace") if isinstance(item, bytes) else str(item)
            for item in data.ravel()
        ]
    flat = np.ascontiguousarray(data).ravel()
    return flat if budget is None else json_numbers(flat, budget, tensor.name)
