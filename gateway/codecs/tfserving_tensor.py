"""numpy tensors <-> TF Serving ``TensorProto`` (our wire-compatible copy).

Requests always use ``tensor_content`` (raw little-endian bytes: no per-element encoding); responses
are read from ``tensor_content`` or from the typed ``*_val`` fields, whichever the server filled.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gateway.codecs.limits import Budget, checked_shape
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


# Value fields that hold a narrower type in int32s: what each value must fit.
_NARROW: dict[int, np.dtype[Any]] = {
    DT.DT_UINT8: np.dtype(np.uint8),
    DT.DT_UINT16: np.dtype(np.uint16),
    DT.DT_INT8: np.dtype(np.int8),
    DT.DT_INT16: np.dtype(np.int16),
    DT.DT_HALF: np.dtype(np.uint16),
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


def from_tensor_proto(
    name: str, proto: tf.TensorProto, budget: Budget, role: str = "tensor"
) -> Tensor:
    """Read a TensorProto, charging its decoded size (after any broadcast) to ``budget`` first;
    errors call it ``{role} {name!r}``.

    InvalidInput or PayloadTooLarge if it is unreadable (a backend turns that into a 502).
    """
    where = f"{role} {name!r}"
    datatype = DT_TO_DATATYPE.get(proto.dtype)
    if datatype is None or datatype == "BF16":
        known = DT.Name(proto.dtype) if proto.dtype in DT.values() else str(proto.dtype)
        raise InvalidInput(f"{where} has dtype {known}, which the gateway does not carry")
    shape = checked_shape(where, (dim.size for dim in proto.tensor_shape.dim))
    if proto.dtype == DT.DT_STRING:
        values: Any = proto.string_val
    elif proto.tensor_content:
        values = None
    else:
        values = getattr(proto, _VALUE_FIELD[proto.dtype])
    fills = values is not None and len(values) == 1
    # TensorProto semantics: a single value fills the whole tensor, so one 4-byte float_val may
    # stand for gigabytes; the budget is charged for what it fills.
    extra = len(values[0]) if fills and proto.dtype == DT.DT_STRING else 0
    count = budget.charge(where, shape, datatype, extra)
    if values is None:
        dtype = _NUMPY_OF_DT[proto.dtype]
        if len(proto.tensor_content) != count * dtype.itemsize:
            raise InvalidInput(
                f"{where}: tensor_content has {len(proto.tensor_content)} bytes, "
                f"shape {list(shape)} of {datatype} needs {count * dtype.itemsize}"
            )
        array = np.frombuffer(proto.tensor_content, dtype=dtype)
    elif len(values) != count and not (fills and count > 1):
        raise InvalidInput(
            f"{where} has {len(values)} values for shape {list(shape)} ({count} needed)"
        )
    elif proto.dtype == DT.DT_STRING:
        array = np.empty(len(values), dtype=object)
        array[:] = list(values)
    else:
        array = _from_value_field(proto.dtype, values, where)
    if array.size != count:
        array = np.full(count, array[0], dtype=array.dtype)
    return Tensor(name, datatype, array.reshape(shape))


def _from_value_field(dt: int, values: Any, where: str) -> np.ndarray[Any, Any]:
    dtype = _NUMPY_OF_DT[dt]
    if dt in _NARROW:
        # int_val and half_val carry narrower types (half_val: float16 bit patterns) in int32s.
        wide = np.asarray(values, dtype=np.int64)
        carried = _NARROW[dt]
        info = np.iinfo(carried)
        if wide.size and (wide.min() < info.min or wide.max() > info.max):
            raise InvalidInput(f"{where}: a value is out of range for {DT.Name(dt)}")
        narrow = wide.astype(carried)
        return narrow.view(np.float16) if dt == DT.DT_HALF else narrow
    return np.asarray(values, dtype=dtype)
