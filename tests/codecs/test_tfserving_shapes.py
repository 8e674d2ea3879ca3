"""Forwarded Predicts are charged for their inputs' decoded size from the wire, without decoding
a value: small bodies parsed, large ones scanned, with the same verdicts as decoding them."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from gateway.codecs.tfserving_grpc import predict_request_tensors
from gateway.codecs.tfserving_shapes import PARSE_BYTES, charge_predict_inputs
from gateway.errors import InvalidInput, PayloadTooLarge
from gateway.wire import tensorflow_pb2 as tf
from gateway.wire import tensorflow_serving_pb2 as tfs

LIMIT = 1 << 20


def request(shape: list[int], dtype: Any = tf.DT_FLOAT, padded: bool = False) -> bytes:
    """One float_val filling ``shape``; ``padded`` adds an input whose content takes the body
    past PARSE_BYTES (so the scan, not the parser, reads it)."""
    message = tfs.PredictRequest(model_spec=tfs.ModelSpec(name="m"), output_filter=["out"])
    tensor = message.inputs["input"]
    tensor.dtype = dtype
    tensor.tensor_shape.dim.extend(tf.TensorShapeProto.Dim(size=size) for size in shape)
    tensor.float_val.append(1.0)
    if padded:
        pad = message.inputs["pad"]
        pad.dtype = tf.DT_FLOAT
        pad.tensor_shape.dim.add(size=PARSE_BYTES // 4)
        pad.tensor_content = struct.pack(f"<{PARSE_BYTES // 4}f", *range(PARSE_BYTES // 4))
    return message.SerializeToString()


def verdict(check: object) -> type[Exception] | None:
    try:
        check()  # type: ignore[operator]
    except (InvalidInput, PayloadTooLarge) as error:
        return type(error)
    return None


@pytest.mark.parametrize("padded", [False, True], ids=["parsed", "scanned"])
@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ([1, 64], None),
        ([1 << 40, 64], PayloadTooLarge),  # the 43-byte Predict
        ([300_000, 64], PayloadTooLarge),
        ([10**9, 10**9], PayloadTooLarge),
        ([1] * 33, InvalidInput),
        ([-1, 64], InvalidInput),
        ([0, 1 << 40], PayloadTooLarge),
    ],
)
def test_forwarded_inputs_get_the_verdict_decoding_gives(shape, expected, padded):
    body = request(shape, padded=padded)
    assert (len(body) > PARSE_BYTES) == padded
    assert verdict(lambda: charge_predict_inputs(body, LIMIT)) is expected
    decoded = tfs.PredictRequest.FromString(body)
    assert verdict(lambda: predict_request_tensors(decoded, LIMIT)) is expected


@pytest.mark.parametrize("padded", [False, True], ids=["parsed", "scanned"])
def test_inputs_are_charged_together(padded):
    message = tfs.PredictRequest.FromString(request([LIMIT // 32 * 3], padded=padded))
    message.inputs["second"].CopyFrom(message.inputs["input"])  # 3/8 of the limit each: fits
    assert verdict(lambda: charge_predict_inputs(message.SerializeToString(), LIMIT)) is None
    message.inputs["third"].CopyFrom(message.inputs["input"])  # 9/8 of it: refused
    assert verdict(lambda: charge_predict_inputs(message.SerializeToString(), LIMIT)) is (
        PayloadTooLarge
    )


def _delimited(number: int, data: bytes) -> bytes:
    length, size = b"", len(data)
    while size >= 0x80:
        length += bytes([size & 0x7F | 0x80])
        size >>= 7
    return bytes([number << 3 | 2]) + length + bytes([size]) + data


def test_what_the_scan_cannot_read_is_left_to_tf_serving():
    huge = tfs.PredictRequest.FromString(request([1 << 40, 64])).inputs["input"]
    unreadable = _delimited(2, _delimited(1, b"bad") + _delimited(2, b"\xff" * PARSE_BYTES))
    body = unreadable + _delimited(
        2, _delimited(1, b"input") + _delimited(2, huge.SerializeToString())
    )
    assert len(body) > PARSE_BYTES
    assert verdict(lambda: charge_predict_inputs(body, LIMIT)) is None  # TF Serving refuses it


def test_an_unknown_dtype_is_checked_for_shape_only():
    assert verdict(lambda: charge_predict_inputs(request([1 << 40], dtype=999), LIMIT)) is None
    assert verdict(lambda: charge_predict_inputs(request([1] * 40, dtype=999), LIMIT)) is (
        InvalidInput
    )
