"""Fuzz: Open Inference Protocol ``ModelInferRequest`` bytes, typed or raw contents, built field
by field or mutated, as the gRPC front end reads them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.codecs import oip_grpc
from gateway.grpc.call import parse
from gateway.inference import DATATYPES, InferRequest
from gateway.wire import oip_pb2 as oip
from tests.codecs.fuzzing import (
    LIMIT,
    SHAPE_DIMS,
    check_tensors,
    decoded_or_refused,
    mutated,
    traced,
)

pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")

INT32 = st.integers(-(2**31), 2**31 - 1)
CONTENTS = {
    "bool_contents": st.booleans(),
    "int_contents": INT32,
    "int64_contents": st.integers(-(2**63), 2**63 - 1),
    "uint_contents": st.integers(0, 2**32 - 1),
    "uint64_contents": st.integers(0, 2**64 - 1),
    "fp32_contents": st.floats(width=32),
    "fp64_contents": st.floats(),
    "bytes_contents": st.binary(max_size=6),
}
PARAMETERS = st.dictionaries(
    st.sampled_from(["timeout", "shared_memory_region", "classification", "x"]),
    st.one_of(
        st.builds(oip.InferParameter, bool_param=st.booleans()),
        st.builds(oip.InferParameter, int64_param=st.integers(-(2**63), 2**63 - 1)),
        st.builds(oip.InferParameter, string_param=st.text(max_size=4)),
        st.builds(oip.InferParameter),
    ),
    max_size=2,
)


@st.composite
def tensor_contents(
    draw: st.DrawFn, tensor: oip.ModelInferRequest.InferInputTensor, raw: bool
) -> bytes | None:
    """Fill a tensor's shape and typed contents, or return its raw contents: fitting its
    datatype (mostly), or any shape and values."""
    shape = draw(st.lists(st.integers(0, 4), max_size=3))
    count = 1
    for size in shape:
        count *= size
    fits = tensor.datatype in DATATYPES and draw(st.integers(0, 3)) > 0
    if not fits and draw(st.booleans()):
        shape = draw(st.one_of(st.lists(SHAPE_DIMS, max_size=4), st.lists(st.just(1), max_size=70)))
    tensor.shape.extend(shape)
    if raw:
        if fits and tensor.datatype != "BYTES":
            size = count * DATATYPES[tensor.datatype].itemsize
            return draw(st.binary(min_size=size, max_size=size))
        return draw(st.binary(max_size=48))
    if fits and tensor.datatype in oip_grpc.CONTENTS:
        field = oip_grpc.CONTENTS[tensor.datatype][0]
        values = draw(st.lists(CONTENTS[field], min_size=count, max_size=count))
        getattr(tensor.contents, field).extend(values)
    for field in draw(st.lists(st.sampled_from(sorted(CONTENTS)), max_size=1)):
        getattr(tensor.contents, field).extend(draw(st.lists(CONTENTS[field], max_size=12)))
    return None


@st.composite
def infer_bodies(draw: st.DrawFn) -> bytes:
    message = oip.ModelInferRequest(model_name="digits", id=draw(st.text(max_size=3)))
    raw = draw(st.booleans())
    wild = draw(st.integers(0, 3)) == 0
    for index in range(draw(st.integers(0 if wild else 1, 3))):
        names = st.sampled_from(sorted(DATATYPES))
        datatype = draw(st.one_of(names, st.text(max_size=4)) if wild else names)
        tensor = message.inputs.add(
            name=draw(st.sampled_from([f"in{index}", ""])) if wild else f"in{index}"
        )
        tensor.datatype = datatype
        if wild:
            for key, value in draw(PARAMETERS).items():
                tensor.parameters[key].CopyFrom(value)
        blob = draw(tensor_contents(tensor, raw))
        if blob is not None:
            message.raw_input_contents.append(blob)
    if wild:
        for key, value in draw(PARAMETERS).items():
            message.parameters[key].CopyFrom(value)
    for name in draw(st.lists(st.text(max_size=3), max_size=2)):
        message.outputs.add(name=name)
    body = message.SerializeToString()
    return draw(mutated(body)) if draw(st.integers(0, 4)) == 0 else body


@given(infer_bodies())
def test_model_infer_request_decodes_or_is_refused(body):
    def decode() -> InferRequest:
        return oip_grpc.decode_request(parse(oip.ModelInferRequest, body), LIMIT)

    with traced():
        request = decoded_or_refused(decode, body)
    if request is not None:
        assert request.inputs is not None
        check_tensors(request.inputs)
