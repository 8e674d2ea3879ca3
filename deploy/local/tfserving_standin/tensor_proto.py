"""TensorProto to and from arrays, with values in typed fields as TF's Tensor::AsProtoField."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

from deploy.local.tfserving_standin.errors import invalid
from deploy.local.tfserving_standin.runtime import OutputTensor

_PROTO_FIELD = {
    types_pb2.DT_FLOAT: "float_val",
    types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_INT32: "int_val",
    types_pb2.DT_INT16: "int_val",
    types_pb2.DT_INT8: "int_val",
    types_pb2.DT_UINT8: "int_val",
    types_pb2.DT_UINT16: "int_val",
    types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_UINT32: "uint32_val",
    types_pb2.DT_UINT64: "uint64_val",
    types_pb2.DT_BOOL: "bool_val",
    types_pb2.DT_STRING: "string_val",
}


def fill_tensor_proto(proto: tensor_pb2.TensorProto, tensor: OutputTensor) -> None:
    """Serialise like TF's Tensor::AsProtoField: shape plus the typed value field."""
    values = tensor.value
    proto.dtype = tensor.dtype
    for size in values.shape:
        proto.tensor_shape.dim.add(size=size)
    field_name = _PROTO_FIELD.get(tensor.dtype)
    if field_name is not None:
        getattr(proto, field_name).extend(values.ravel().tolist())
    elif tensor.dtype in (types_pb2.DT_HALF, types_pb2.DT_BFLOAT16):
        proto.half_val.extend(values.view(np.uint16).ravel().tolist())
    elif tensor.dtype in (types_pb2.DT_COMPLEX64, types_pb2.DT_COMPLEX128):
        pairs = np.stack([values.real, values.imag], axis=-1).ravel().tolist()
        field = proto.scomplex_val if tensor.dtype == types_pb2.DT_COMPLEX64 else proto.dcomplex_val
        field.extend(pairs)
    else:
        proto.CopyFrom(tf.make_tensor_proto(values))


def proto_to_array(alias: str, proto: tensor_pb2.TensorProto) -> np.ndarray[Any, Any]:
    """A request's input tensor (typed fields or ``tensor_content``) as an array."""
    try:
        return np.asarray(tf.make_ndarray(proto))
    except (TypeError, ValueError) as exc:
        raise invalid(f"tensor parsing error: {alias}") from exc
