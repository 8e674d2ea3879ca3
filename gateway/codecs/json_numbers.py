"""Numbers parsed from JSON (as numpy built them) -> a tensor's dtype, checked.

Integers must fit the datatype and integer datatypes take no fractions; floats overflow to
infinity, as a float does (and without a warning in the log).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gateway.errors import InvalidInput
from gateway.inference import DATATYPES

_INT_KINDS = "iu"


def as_datatype(raw: np.ndarray[Any, Any], datatype: str, where: str) -> np.ndarray[Any, Any]:
    dtype = DATATYPES[datatype]
    if raw.size and raw.dtype.kind not in _accepted_kinds(dtype):
        raise InvalidInput(f"{where}: data must hold {datatype} values")
    if dtype.kind in _INT_KINDS and raw.size:
        info = np.iinfo(dtype)
        if raw.min() < info.min or raw.max() > info.max:
            raise InvalidInput(f"{where}: a value is out of range for {datatype}")
    if dtype.kind == "f" and raw.dtype.kind == "f" and raw.dtype.itemsize > dtype.itemsize:
        with np.errstate(over="ignore"):  # costs microseconds: only where a float can overflow
            return raw.astype(dtype)
    return raw.astype(dtype, copy=False)


def _accepted_kinds(dtype: np.dtype[Any]) -> str:
    if dtype.kind == "b":
        return "b"
    if dtype.kind in _INT_KINDS:
        return _INT_KINDS
    return "biuf"
