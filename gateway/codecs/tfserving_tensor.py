"""numpy tensors <-> TF Serving ``TensorProto`` (our wire-compatible copy).

Requests always use ``tensor_content`` (raw little-endian bytes: no per-element encoding); responses
are read from ``tensor_content`` or from the typed ``*_val`` fields, whichever the server filled.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gateway.errors import InvalidInput
from gateway.inference import Tensor
from gateway.wire import tensorflow_pb2 as tf

DT = tf.DataType

# OIP datatype <-> TensorFlow DataType.
DATATYPE_TO_DT: dict[str, int] = {
    "BOOL": DT.DT_BOOL,
    "UINT8": DT.DT_UINT8,
    "UINT16": DT.DT_UINT16,
    "UINT32": DT.DT_UINT32,
    "UINT64": DT.DT_UINT64,
    "INT8": DT.DT_INT8,
    "INT16": DT.DT_INT16,
    "INT32": DT.DT_INT32,
    "INT64": DT.DT_INT64,
    "FP16": DT.DT_HALF,
    "FP32": DT.DT_FLOAT,
    "FP64": DT.DT_DOUBLE,
    "BYTES": DT.DT_STRING,
}
DT_TO_DATATYPE: dict[int, str] = {dt: name for name, dt in DATATYPE_TO_DT.items()}
DT_TO_DATATYPE[DT.DT_BFLOAT16] = "BF16"

_NUMPY_OF_DT: dict[int, np.dtype[Any]] = {
    DT.DT_BOOL: np.dtype("<?"),
    DT.DT_UINT8: np.dtype("<u1"),
    DT.DT_UINT16: np.dtype("<u2"),
    DT.DT_UINT32: np.dtype("<u4"),
    DT.DT_UINT64: np.dtype("<u8"),
    DT.DT_INT8: np.dtype("<i1"),
    DT.DT_INT16: np.dtype("<i2"),
    DT.DT_INT32: np.dtype("<i4"),
    DT.DT_INT64: np.dtype("<i8"),
    DT.DT_HALF: np.dtype("<f2"),
    DT.DT_FLOAT: np.dtype("<f4"),
    DT.DT_DOUBLE: np.dtype("<f8"),
}

# Which repeated field holds the values of each dtype when tensor_content is empty.
_VALUE_FIELD: dict[int, str] = {
    DT.DT_BOOL: "bool_val",
    DT.DT_UINT8: "int_val",
    DT.DT_UINT16: "int_val",
    DT.DT_INT8: "int_val",
    DT.DT_INT16: "int_val",
    DT.DT_INT32: "int_val",
    DT.DT_UINT32: "uint32_val",
    DT.DT_UINT64: "uint64_val",
    DT.DT_INT64: "int64_val",
    DT.DT_HALF: "half_val",
    DT.DT_FLOAT: "float_val",
    DT.DT_DOUBLE: "double_val",
}


def to_tensor_proto(tensor: Tensor, proto: tf.TensorProto) -> None:
    """Fill ``proto`` (typically a map entry of a PredictRequest) from ``tensor``."""
    dtype = DATATYPE_TO_DT.get(tensor.datatype)
    if dtype is None:
        raise InvalidInput(f"tensor {tensor.name!r}: TF Serving has no {tensor.datatype} tensors")
    proto.dtype = dtype  # type: ignore[assignment]
    dims = proto.tensor_shape.dim
    for size in tensor.data.shape:
        dims.add().size = size
    if dtype == DT.DT_STRING:
        proto.string_val.extend(
            item if isinstance(item, bytes) else str(item).encode() for item in tensor.data.flat
        )
        return
    data = tensor.data
    wanted = _NUMPY_OF_DT[dtype]
    if data.dtype != wanted:
        data = data.astype(wanted)
    proto.tensor_content = data.tobytes()


def from_tensor_proto(name: str, proto: tf.TensorProto) -> Tensor:
    """Read a TensorProto; InvalidInput if it is unreadable (a backend turns that into a 502)."""
    datatype = DT_TO_DATATYPE.get(proto.dtype)
    if datatype is None or datatype == "BF16":
        known = DT.Name(proto.dtype) if proto.dtype in DT.values() else str(proto.dtype)
        raise InvalidInput(f"tensor {name!r} has dtype {known}, which the gateway does not carry")
    shape = tuple(dim.size for dim in proto.tensor_shape.dim)
    if any(size < 0 for size in shape):
        raise InvalidInput(f"tensor {name!r} has a negative dimension in shape {list(shape)}")
    count = math.prod(shape)
    if proto.dtype == DT.DT_STRING:
        array = np.empty(len(proto.string_val), dtype=object)
        array[:] = list(proto.string_val)
    elif proto.tensor_content:
        dtype = _NUMPY_OF_DT[proto.dtype]
        if len(proto.tensor_content) != count * dtype.itemsize:
            raise InvalidInput(
                f"tensor {name!r}: tensor_content has {len(proto.tensor_content)} bytes, "
                f"shape {list(shape)} of {datatype} needs {count * dtype.itemsize}"
            )
        array = np.frombuffer(proto.tensor_content, dtype=dtype)
    else:
        array = _from_value_field(proto)
    if array.size == 1 and count > 1:
        # TensorProto semantics: a single value fills the whole tensor.
        array = np.full(count, array[0], dtype=array.dtype)
    if array.size != count:
        raise InvalidInput(
            f"tensor {name!r} has {array.size} values for shape {list(shape)} ({count} needed)"
        )
    return Tensor(name, datatype, array.reshape(shape))


def _from_value_field(proto: tf.TensorProto) -> np.ndarray[Any, Any]:
    dtype = _NUMPY_OF_DT[proto.dtype]
    values = getattr(proto, _VALUE_FIELD[proto.dtype])
    if proto.dtype == DT.DT_HALF:
        # half_val carries the float16 bit patterns in int32s.
        return np.asarray(values, dtype=np.uint16).view(np.float16)
    return np.asarray(values, dtype=dtype)
