"""Tensors as raw bytes, the encoding the Open Inference Protocol shares between its REST binary
extension (``binary_data_size``) and its gRPC ``raw_input_contents`` / ``raw_output_contents``:
little-endian values, row-major; BYTES elements each prefixed by a 4-byte little-endian length.
Also the request parameters both front ends read alike."""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from gateway.errors import InvalidInput
from gateway.inference import DATATYPES, Parameters, Tensor, TensorSpec


def tensor_bytes(tensor: Tensor) -> bytes:
    if tensor.datatype == "BYTES":
        parts: list[bytes] = []
        for item in tensor.data.ravel():
            raw = item if isinstance(item, bytes) else str(item).encode()
            parts.append(struct.pack("<I", len(raw)))
            parts.append(raw)
        return b"".join(parts)
    data = tensor.data
    if data.dtype.byteorder == ">":
        data = data.astype(data.dtype.newbyteorder("<"))
    return data.tobytes()


def tensor_data(
    raw: bytes | memoryview, datatype: str, shape: tuple[int, ...], where: str, source: str
) -> np.ndarray[Any, Any]:
    """The array in ``raw`` (wrapped, not copied); ``source`` names the bytes in errors."""
    count = math.prod(shape)
    if datatype == "BYTES":
        return _length_prefixed(raw, count, where, source).reshape(shape)
    dtype = DATATYPES[datatype].newbyteorder("<")
    needed = count * dtype.itemsize
    if len(raw) != needed:
        raise InvalidInput(
            f"{where}: {source} has {len(raw)} bytes, shape {list(shape)} of {datatype} "
            f"needs {needed}"
        )
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def _length_prefixed(
    raw: bytes | memoryview, count: int, where: str, source: str
) -> np.ndarray[Any, Any]:
    items: list[bytes] = []
    position = 0
    while position < len(raw):
        if position + 4 > len(raw):
            raise InvalidInput(f"{where}: a BYTES element's 4-byte length prefix is cut short")
        (length,) = struct.unpack_from("<I", raw, position)
        position += 4
        if position + length > len(raw):
            raise InvalidInput(f"{where}: a BYTES element of {length} bytes is cut short")
        items.append(bytes(raw[position : position + length]))
        position += length
    if len(items) != count:
        raise InvalidInput(
            f"{where}: shape needs {count} BYTES elements, {source} has {len(items)}"
        )
    array = np.empty(count, dtype=object)
    array[:] = items
    return array


def timeout_s(parameters: Parameters) -> float | None:
    """Triton's ``timeout`` request parameter, in microseconds."""
    value = parameters.get("timeout")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InvalidInput("parameter 'timeout' must be a positive integer of microseconds")
    return value / 1_000_000


def tensor_spec(item: dict[str, Any]) -> TensorSpec:
    """One input or output of OIP model metadata (``{"name", "datatype", "shape"}``)."""
    return checked_spec(str(item["name"]), str(item["datatype"]), item["shape"])


def checked_spec(name: str, datatype: str, shape: Any) -> TensorSpec:
    """Metadata of one tensor as a server reported it: a known datatype, dims >= -1."""
    if datatype not in DATATYPES:
        raise InvalidInput(f"tensor {name!r} has unknown datatype {datatype!r}")
    dims = tuple(int(d) for d in shape)
    if any(d < -1 for d in dims):
        raise InvalidInput(f"tensor {name!r} has an impossible shape {list(dims)}")
    return TensorSpec(name, datatype, dims)
