"""Fuzz: TF Serving REST ``:predict`` bodies (row, columnar, b64), typed by random signatures."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gateway.codecs import tfserving_json
from gateway.errors import BackendError
from gateway.inference import ModelMetadata, TensorSpec
from tests.codecs.fuzzing import (
    JSON_VALUES,
    check_tensors,
    decoded_or_refused,
    mutated,
    nested_numbers,
    traced,
)

pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")

SPEC_TYPES = ["FP32", "FP64", "FP16", "INT64", "INT8", "UINT8", "BOOL", "BYTES", "BYTES", "BF16"]
B64 = st.one_of(
    st.binary(max_size=6).map(lambda raw: {"b64": base64.b64encode(raw).decode()}),
    st.fixed_dictionaries({"b64": st.one_of(st.text(max_size=6), JSON_VALUES)}),
)
STRINGS: st.SearchStrategy[Any] = st.recursive(
    st.one_of(st.text(max_size=4), B64), lambda inner: st.lists(inner, max_size=3), max_leaves=8
)


@st.composite
def signatures(draw: st.DrawFn) -> ModelMetadata:
    names = draw(st.lists(st.sampled_from(["input", "mask", "b64_bytes"]), min_size=1, unique=True))
    specs = tuple(TensorSpec(n, draw(st.sampled_from(SPEC_TYPES)), (-1,)) for n in names)
    return ModelMetadata("tensorflow", specs, specs)


LEAVES = {
    "FP32": st.floats(width=32, allow_nan=False, allow_infinity=False),
    "FP64": st.floats(allow_nan=False, allow_infinity=False),
    "FP16": st.floats(-7e4, 7e4),
    "INT64": st.integers(-(2**63), 2**63 - 1),
    "INT8": st.integers(-130, 130),
    "UINT8": st.integers(-2, 260),
    "BOOL": st.booleans(),
}


@st.composite
def values_for(draw: st.DrawFn, spec: TensorSpec, shape: tuple[int, ...]) -> Any:
    """Values of ``shape`` that suit ``spec`` (mostly), or anything at all."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.one_of(nested_numbers(), JSON_VALUES))
    if spec.datatype == "BYTES":
        leaves: st.SearchStrategy[Any] = st.one_of(st.text(max_size=4), B64)
    else:
        leaves = LEAVES.get(spec.datatype, st.integers(0, 1))
    count = int(np.prod(shape)) if shape else 1
    flat = draw(st.lists(leaves, min_size=count, max_size=count))
    if not shape:
        return flat[0]
    cells = np.empty(count, dtype=object)
    cells[:] = flat
    return cells.reshape(shape).tolist()


@st.composite
def bodies(draw: st.DrawFn, signature: ModelMetadata) -> bytes:
    specs = {spec.name: spec for spec in signature.inputs}
    shapes = {name: tuple(draw(st.lists(st.integers(0, 3), max_size=2))) for name in specs}
    named = draw(st.booleans()) or len(specs) > 1

    def value(name: str, batch: tuple[int, ...] = ()) -> Any:
        return draw(values_for(specs[name], batch + shapes[name]))

    only = next(iter(specs))
    if draw(st.booleans()):  # row format: a list of instances
        rows = draw(st.integers(0, 3))
        instances = [{n: value(n) for n in specs} if named else value(only) for _ in range(rows)]
        doc: dict[str, Any] = {"instances": instances}
    else:
        batch = (draw(st.integers(0, 3)),)
        doc = {"inputs": {n: value(n, batch) for n in specs} if named else value(only, batch)}
    if draw(st.booleans()):
        doc["signature_name"] = draw(st.sampled_from(["serving_default"] * 6 + [None, 1]))
    if draw(st.integers(0, 7)) == 0:
        doc = draw(st.dictionaries(st.sampled_from(["instances", "inputs", "x"]), JSON_VALUES))
    body = json.dumps(doc).encode()
    return draw(mutated(body)) if draw(st.integers(0, 5)) == 0 else body


@st.composite
def cases(draw: st.DrawFn) -> tuple[ModelMetadata, bytes]:
    signature = draw(signatures())
    return signature, draw(bodies(signature))


BYTES_INPUT = ModelMetadata(
    platform="tensorflow",
    inputs=(TensorSpec(name="input", datatype="BYTES", shape=(-1,)),),
    outputs=(TensorSpec(name="input", datatype="BYTES", shape=(-1,)),),
)


@given(cases())
@example((BYTES_INPUT, b'{"instances": [[], [[]], [[]]]}'))  # ragged, no value: was a (3,) array
def test_tf_rest_predict_decodes_or_is_refused(case):
    signature, body = case

    def decode() -> list:
        doc = tfserving_json.load_body(body)
        return tfserving_json.decode_predict_request(doc, signature, 256 * 1024).inputs

    with traced():
        tensors = decoded_or_refused(decode, body)
    if tensors is not None:
        check_tensors(tensors)


@given(cases(), st.lists(st.sampled_from(["input", "mask", "b64_bytes", "other"]), max_size=2))
def test_tf_rest_response_decodes_or_is_the_backends_fault(case, wanted):
    signature, body = case
    reply = body.replace(b'"instances"', b'"predictions"').replace(b'"inputs"', b'"outputs"')
    with traced():
        decoded_or_refused(
            lambda: tfserving_json.decode_predict_response(reply, signature, wanted, "b"),
            reply,
            (BackendError,),
        )
