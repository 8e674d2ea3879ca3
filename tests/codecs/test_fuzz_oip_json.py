"""Fuzz: Open Inference Protocol REST bodies, JSON and binary, well-formed, wrong and mutated."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.codecs import oip_json
from gateway.errors import BackendError
from gateway.inference import DATATYPES, InferRequest
from tests.codecs.fuzzing import (
    DATATYPE_NAMES,
    JSON_VALUES,
    LIMIT,
    SHAPES,
    check_tensors,
    decoded_or_refused,
    mutated,
    nested_numbers,
    traced,
)

pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")

NUMERIC = sorted(set(DATATYPES) - {"BYTES"})


@st.composite
def wellformed_input(draw: st.DrawFn, index: int) -> tuple[dict[str, Any], bytes]:
    """A valid input (JSON data or binary), with its binary part."""
    shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
    count = int(np.prod(shape)) if shape else 1
    datatype = draw(st.sampled_from(sorted(DATATYPES)))
    entry: dict[str, Any] = {"name": f"in{index}", "datatype": datatype, "shape": list(shape)}
    if datatype == "BYTES":
        values = draw(st.lists(st.text(max_size=5), min_size=count, max_size=count))
        if draw(st.booleans()):
            entry["data"] = values
            return entry, b""
        blob = b"".join(len(v.encode()).to_bytes(4, "little") + v.encode() for v in values)
    else:
        dtype = DATATYPES[datatype]
        raw = draw(st.binary(min_size=count * dtype.itemsize, max_size=count * dtype.itemsize))
        array = np.frombuffer(raw, dtype=dtype.newbyteorder("<"))
        if draw(st.booleans()) and dtype.kind != "f":  # floats may be NaN: JSON has none
            entry["data"] = array.tolist()
            return entry, b""
        blob = raw
    entry["parameters"] = {"binary_data_size": len(blob)}
    return entry, blob


@st.composite
def wild_input(draw: st.DrawFn) -> tuple[Any, bytes]:
    """An input with any field of any type, and maybe a binary part that does not match."""
    entry: dict[str, Any] = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "name": st.one_of(st.text(max_size=5), JSON_VALUES),
                "datatype": DATATYPE_NAMES,
                "shape": st.one_of(SHAPES, JSON_VALUES),
                "data": st.one_of(nested_numbers(), JSON_VALUES),
                "parameters": st.one_of(
                    JSON_VALUES,
                    st.fixed_dictionaries({"binary_data_size": st.integers(-2, 70)}),
                ),
            },
        )
    )
    blob = draw(st.binary(max_size=70)) if draw(st.booleans()) else b""
    return (entry if draw(st.integers(0, 9)) else draw(JSON_VALUES)), blob


VALID_EXTRAS = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=4),
        "outputs": st.lists(
            st.fixed_dictionaries(
                {"name": st.text(max_size=4)},
                optional={"parameters": st.fixed_dictionaries({"binary_data": st.booleans()})},
            ),
            max_size=2,
        ),
        "parameters": st.fixed_dictionaries({"binary_data_output": st.booleans()}),
    },
)
WILD_EXTRAS = st.dictionaries(st.sampled_from(["id", "outputs", "parameters"]), JSON_VALUES)


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, int | None]:
    """A request body and its Inference-Header-Content-Length: well-formed, with fields of any
    type, or mutated."""
    kind = draw(st.sampled_from(["wellformed", "wellformed", "wild", "mutated"]))
    count = draw(st.integers(1 if kind == "wellformed" else 0, 3))
    if kind == "wild":
        inputs = [draw(wild_input()) for _ in range(count)]
    else:
        inputs = [draw(wellformed_input(index)) for index in range(count)]
    doc: dict[str, Any] = {"inputs": [entry for entry, _ in inputs]}
    doc.update(draw(WILD_EXTRAS if kind == "wild" else VALID_EXTRAS))
    head = json.dumps(doc).encode()  # orjson writes no integers past 64 bits
    tail = b"".join(blob for _, blob in inputs)
    length = len(head) if tail or draw(st.booleans()) else None
    body = head + tail
    if kind == "mutated":
        body = draw(mutated(body))
    if kind != "wellformed" and draw(st.booleans()):
        length = draw(st.integers(-3, len(body) + 3))
    return body, length


@given(bodies())
def test_oip_rest_request_decodes_or_is_refused(case):
    body, length = case
    with traced():
        request = decoded_or_refused(
            lambda: oip_json.decode_request(body, length, "m", None, limit=LIMIT), body
        )
    if request is not None:
        assert isinstance(request, InferRequest)
        assert request.inputs is not None
        check_tensors(request.inputs)


@given(bodies())
def test_oip_rest_response_decodes_or_is_the_backends_fault(case):
    body, length = case
    reply = body.replace(b'"inputs"', b'"outputs"')
    with traced():
        decoded_or_refused(
            lambda: oip_json.decode_response(reply, length, "b"), reply, (BackendError,)
        )
