"""Nested JSON lists as dense arrays: the shape follows first elements, as TF Serving's does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2

from deploy.local.tfserving_standin.errors import invalid
from deploy.local.tfserving_standin.json_values import INT_RANGES, json_text, leaf


def _dense_shape(value: Any) -> list[int]:
    """The shape a (nested) JSON list implies, following first elements as TF Serving does."""
    dims: list[int] = []
    while isinstance(value, list):
        dims.append(len(value))
        if not value:
            break
        value = value[0]
    return dims


def _flatten(value: Any, level: int, dims: Sequence[int], dtype: int, out: list[Any]) -> None:
    rank = len(dims)
    if not isinstance(value, list):
        if level != rank:
            raise invalid(
                f"JSON Value: {json_text(value)} found at incorrect level: {level + 1} "
                f"in the JSON DOM. Expected at level: {rank}"
            )
        out.append(leaf(value, dtype))
        return
    if level >= rank:
        raise invalid(f"Encountered list at unexpected level: {level} expected < {rank}")
    if len(value) != dims[level]:
        raise invalid(
            f"Encountered list at unexpected size: {len(value)} at level: {level} "
            f"expected size: {dims[level]}"
        )
    for item in value:
        _flatten(item, level + 1, dims, dtype, out)


MAX_RANK = 32
"""numpy's limit (TF's own is 254): deeper JSON is refused here rather than failing as a 500."""


def flatten(value: Any, dtype: int) -> tuple[list[int], list[Any]]:
    """The shape of a (nested) JSON list and its values in row-major order."""
    dims = _dense_shape(value)
    if len(dims) > MAX_RANK:
        raise invalid(
            f"JSON value nested {len(dims)} lists deep: the stand-in holds tensors of at most "
            f"{MAX_RANK} dimensions"
        )
    values: list[Any] = []
    _flatten(value, 0, dims, dtype, values)
    return dims, values


def to_array(values: list[Any], dims: Sequence[int], dtype: int) -> np.ndarray[Any, Any]:
    if dtype == types_pb2.DT_STRING:
        flat = np.array(values, dtype=object)
    elif dtype in INT_RANGES and dtype != types_pb2.DT_UINT64:
        # Narrow integer types wrap like TF's proto parsing rather than raise.
        flat = np.array(values, dtype=np.int64).astype(tf.as_dtype(dtype).as_numpy_dtype)
    else:
        flat = np.array(values, dtype=tf.as_dtype(dtype).as_numpy_dtype)
    return flat.reshape(dims)


def json_to_array(value: Any, dtype: int) -> np.ndarray[Any, Any]:
    dims, values = flatten(value, dtype)
    return to_array(values, dims, dtype)
