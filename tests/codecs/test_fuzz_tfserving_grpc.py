"""Fuzz: TF Serving ``PredictRequest`` / ``TensorProto`` bytes, built field by field or mutated,
as the gRPC front end reads them; and ``PredictResponse`` bytes as a backend may send them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.codecs.tfserving_grpc import (
    parse_predict_view,
    predict_request_tensors,
    predict_response_tensors,
    retarget_predict_response,
)
from gateway.errors import BackendError, InvalidInput
from gateway.grpc.call import parse
from gateway.wire import tensorflow_pb2 as tf
from gateway.wire import tensorflow_serving_pb2 as tfs
from tests.codecs.fuzzing import (
    LIMIT,
    SHAPE_DIMS,
    check_tensors,
    decoded_or_refused,
    mutated,
    traced,
)

pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")

KNOWN_DTYPES = "FLOAT DOUBLE INT32 INT64 UINT8 INT8 INT16 UINT16 UINT32 UINT64 BOOL HALF STRING"
DTYPES = st.one_of(
    st.sampled_from([tf.DataType.Value(f"DT_{name}") for name in KNOWN_DTYPES.split()]),
    st.integers(0, 200),  # DT_BFLOAT16 and names no TensorFlow has
)
INT32 = st.integers(-(2**31), 2**31 - 1)
VALUE_FIELDS = {
    "float_val": st.floats(width=32),
    "double_val": st.floats(),
    "int_val": INT32,
    "int64_val": st.integers(-(2**63), 2**63 - 1),
    "half_val": INT32,
    "bool_val": st.booleans(),
    "uint32_val": st.integers(0, 2**32 - 1),
    "uint64_val": st.integers(0, 2**64 - 1),
    "string_val": st.binary(max_size=8),
}


@st.composite
def tensor_protos(draw: st.DrawFn, proto: tf.TensorProto) -> None:
    proto.dtype = draw(DTYPES)  # type: ignore[assignment]  # open enum: any int
    shape = draw(
        st.one_of(st.lists(st.integers(0, 4), max_size=3), st.lists(SHAPE_DIMS, max_size=4))
    )
    if draw(st.integers(0, 9)) == 0:
        shape = [1] * draw(st.integers(30, 70))
    for size in shape:
        proto.tensor_shape.dim.add().size = size
    if draw(st.booleans()):
        proto.tensor_content = draw(st.binary(max_size=96))
    for field in draw(st.lists(st.sampled_from(sorted(VALUE_FIELDS)), max_size=2, unique=True)):
        values = draw(st.lists(VALUE_FIELDS[field], max_size=12))
        getattr(proto, field).extend(values)


@st.composite
def predict_bodies(draw: st.DrawFn) -> bytes:
    message = tfs.PredictRequest()
    if draw(st.integers(0, 9)):
        message.model_spec.name = "digits"
    for index in range(draw(st.integers(0, 3))):
        draw(tensor_protos(message.inputs[f"in{index}"]))
    body = message.SerializeToString()
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return draw(st.binary(max_size=64))
    return draw(mutated(body)) if choice < 3 else body


@given(predict_bodies())
def test_predict_request_decodes_or_is_refused(body):
    def decode() -> list:
        parse_predict_view(body)  # what the front end reads first
        return predict_request_tensors(parse(tfs.PredictRequest, body), LIMIT)

    with traced():
        tensors = decoded_or_refused(decode, body)
    if tensors is not None:
        check_tensors(tensors)


@given(predict_bodies())
def test_predict_response_decodes_or_is_refused_as_unreadable(body):
    # A reply's outputs sit where a request's inputs do (field 2 in both).
    with traced():
        decoded_or_refused(lambda: predict_response_tensors(body, LIMIT), body, (InvalidInput,))
        decoded_or_refused(
            lambda: retarget_predict_response(body, "digits", 1, "serving_default"),
            body,
            (BackendError,),
        )
