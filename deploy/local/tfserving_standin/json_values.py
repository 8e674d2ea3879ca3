"""JSON leaf values as TF Serving's REST API reads them: types, ranges, precision and base64."""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any

import numpy as np
from tensorflow.core.framework import types_pb2

from deploy.local.tfserving_standin.errors import Code, ServingError, invalid
from deploy.local.tfserving_standin.formatting import dtype_name

# The integers each integer type accepts; the narrow ones take int32's and wrap when converted.
INT_RANGES = {
    types_pb2.DT_INT32: (-(2**31), 2**31 - 1),
    types_pb2.DT_INT16: (-(2**31), 2**31 - 1),
    types_pb2.DT_INT8: (-(2**31), 2**31 - 1),
    types_pb2.DT_UINT8: (-(2**31), 2**31 - 1),
    types_pb2.DT_INT64: (-(2**63), 2**63 - 1),
    types_pb2.DT_UINT32: (0, 2**32 - 1),
    types_pb2.DT_UINT64: (0, 2**64 - 1),
}
# Largest integer each float type holds exactly, and its largest finite value.
_FLOAT_LIMITS = {
    types_pb2.DT_FLOAT: (2**24 - 1, float(np.finfo(np.float32).max)),
    types_pb2.DT_DOUBLE: (2**53 - 1, float(np.finfo(np.float64).max)),
}


def json_text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def json_type(value: Any) -> str:
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    return "String" if isinstance(value, str) else "Number"


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def is_object(value: Any) -> bool:
    """A JSON object that is not a ``{"b64": ...}`` value."""
    return isinstance(value, dict) and not _is_b64(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _type_error(value: Any, dtype: int) -> ServingError:
    return invalid(
        f"JSON Value: {json_text(value)} Type: {json_type(value)} "
        f"is not of expected type: {dtype_name(dtype)}"
    )


def b64_decode(value: Any) -> bytes:
    if not _is_b64(value):
        raise invalid(f"JSON Value: {json_text(value)} not formatted correctly for base64 data")
    text = value["b64"]
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise invalid("Unable to base64 decode") from exc


def float_leaf(value: Any, dtype: int) -> float:
    if not _is_number(value):
        raise _type_error(value, dtype)
    max_int, max_float = _FLOAT_LIMITS[dtype]
    lossy = abs(value) > max_int if isinstance(value, int) else abs(value) > max_float
    if lossy and not (isinstance(value, float) and math.isinf(value)):
        target = "float" if dtype == types_pb2.DT_FLOAT else "double"
        raise invalid(
            f"Cannot convert JSON value: {json_text(value)} to {target} without loss of precision."
        )
    return float(value)


def leaf(value: Any, dtype: int) -> Any:
    """One JSON value as a value of this type, or TF Serving's error for it."""
    if isinstance(value, dict):
        if dtype != types_pb2.DT_STRING:
            raise _type_error(value, dtype)
        return b64_decode(value)
    if dtype in _FLOAT_LIMITS:
        return float_leaf(value, dtype)
    if dtype in INT_RANGES:
        low, high = INT_RANGES[dtype]
        if not (isinstance(value, int) and not isinstance(value, bool) and low <= value <= high):
            raise _type_error(value, dtype)
        return value
    if dtype == types_pb2.DT_STRING:
        if not isinstance(value, str):
            raise _type_error(value, dtype)
        return value.encode("utf-8")
    if dtype == types_pb2.DT_BOOL:
        if not isinstance(value, bool):
            raise _type_error(value, dtype)
        return value
    raise ServingError(
        Code.UNIMPLEMENTED,
        f"Conversion of JSON Value: {json_text(value)} to type: {dtype_name(dtype)}",
    )
