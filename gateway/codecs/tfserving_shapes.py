"""The decoded size of a serialized ``PredictRequest``'s inputs, read without decoding a value.

A Predict for a TF Serving variant is forwarded as it came, and TF Serving expands a TensorProto
whose one value fills its shape to the whole shape: a 44-byte request could make it allocate
terabytes. So the forwarding path charges each input's shape and dtype to a
:class:`~gateway.codecs.limits.Budget` as decoding would, reading only the wire fields that hold
them. A small body is parsed whole (upb's C parser is fastest there); a large one is scanned,
field tag by field tag, over a ``memoryview``, skipping the values without copying them (the scan
costs the same at any size). A part it cannot read is left for TF Serving to refuse.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from google.protobuf.message import DecodeError

from gateway.codecs.limits import Budget, checked_shape
from gateway.codecs.tfserving_tensor import DT_TO_DATATYPE
from gateway.wire import tensorflow_pb2 as tf
from gateway.wire import tensorflow_serving_pb2 as tfs

PARSE_BYTES = 16 * 1024
"""Bodies up to this size are parsed whole; larger ones scanned."""

_VARINT, _FIXED64, _DELIMITED, _FIXED32 = 0, 1, 2, 5
_INPUTS = 2  # PredictRequest.inputs: map<string, TensorProto>, entries of (key 1, value 2)
_DTYPE, _SHAPE = 1, 2  # TensorProto.dtype, TensorProto.tensor_shape


class _Unreadable(Exception):
    pass


def _varint(data: memoryview, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise _Unreadable
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


def _fields(data: memoryview, at: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, value or start, end) of each field in ``data[at:end]``."""
    while at < end:
        tag, at = _varint(data, at)
        number, kind = tag >> 3, tag & 7
        if kind == _VARINT:
            value, at = _varint(data, at)
            yield number, kind, value, at
        elif kind == _DELIMITED:
            length, at = _varint(data, at)
            if at + length > end:
                raise _Unreadable
            yield number, kind, at, at + length
            at += length
        elif kind in (_FIXED64, _FIXED32):
            at += 8 if kind == _FIXED64 else 4
        else:
            raise _Unreadable
    if at != end:
        raise _Unreadable


def charge_predict_inputs(body: bytes, limit: int) -> None:
    """Refuse (InvalidInput, PayloadTooLarge) a PredictRequest whose inputs, decoded, would break
    the shape rules or take more than ``limit`` bytes in all, as decoding it would."""
    budget = Budget(limit)
    if len(body) <= PARSE_BYTES:
        try:
            inputs = tfs.PredictRequest.FromString(body).inputs
        except DecodeError:
            return
        for name in sorted(inputs):
            tensor = inputs[name]
            _charge(name, tensor.dtype, (dim.size for dim in tensor.tensor_shape.dim), budget)
        return
    data = memoryview(body)
    try:
        for number, kind, start, end in _fields(data, 0, len(data)):
            if number == _INPUTS and kind == _DELIMITED:
                _charge_entry(data, start, end, budget)
    except _Unreadable:
        return


def _charge(name: str, dtype: int, dims: Iterable[int], budget: Budget) -> None:
    where = f"input {name!r}"
    shape = checked_shape(where, dims)
    datatype = DT_TO_DATATYPE.get(dtype)
    if datatype is not None and datatype != "BF16":  # the rest is TF Serving's to judge
        budget.charge(where, shape, datatype)


def _charge_entry(data: memoryview, start: int, end: int, budget: Budget) -> None:
    name, tensor = "", None
    for number, kind, at, stop in _fields(data, start, end):
        if kind != _DELIMITED:
            continue
        if number == 1:
            name = bytes(data[at:stop]).decode(errors="replace")
        elif number == 2:
            tensor = (at, stop)
    if tensor is None:
        return
    dtype, shape = 0, b""
    for number, kind, value, stop in _fields(data, *tensor):
        if number == _DTYPE and kind == _VARINT:
            dtype = value
        elif number == _SHAPE and kind == _DELIMITED:
            shape = bytes(data[value:stop])
    try:
        dims = tf.TensorShapeProto.FromString(shape).dim
    except DecodeError:
        raise _Unreadable from None
    _charge(name, dtype, (dim.size for dim in dims), budget)
