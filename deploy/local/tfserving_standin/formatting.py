"""How TF Serving's error messages write data types, shapes and sets of names."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tensorflow.core.framework import types_pb2


def dtype_name(dtype: int) -> str:
    """TensorFlow's DataTypeString: DT_FLOAT -> "float"."""
    return enum_name(dtype)[3:].lower()


def enum_name(dtype: int) -> str:
    """The DataType's enum name: "DT_FLOAT"."""
    return str(types_pb2.DataType.Name(dtype))


def braced(names: Iterable[str]) -> str:
    return "{" + ",".join(sorted(names)) + "}"


def shape_text(dims: Sequence[int]) -> str:
    return "[" + ",".join(str(d) for d in dims) + "]"
