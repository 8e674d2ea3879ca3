"""Fuzz: TorchServe bodies (REST bodies and the gRPC ``PredictionsRequest``), for a variant that
needs tensors: OIP JSON, TF Serving JSON, anything else a client may send."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.codecs import torchserve
from gateway.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType
from gateway.inference import ModelMetadata, TensorSpec
from gateway.wire import torchserve_pb2 as ts
from tests.codecs import test_fuzz_oip_json, test_fuzz_tfserving_json
from tests.codecs.fuzzing import LIMIT, check_tensors, decoded_or_refused, mutated, traced

pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")

ALLOWED = (InvalidInput, PayloadTooLarge, UnsupportedMediaType)
DIGITS = ModelMetadata("tf", (TensorSpec("input", "FP32", (-1, 64)),), ())


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, ModelMetadata]:
    kind = draw(st.sampled_from(["oip", "tfs", "bytes"]))
    if kind == "oip":
        body, _ = draw(test_fuzz_oip_json.bodies())
        return body, DIGITS
    if kind == "tfs":
        return draw(test_fuzz_tfserving_json.cases())[::-1]
    doc = {"instances": [[0.5] * 64]}
    body = draw(st.one_of(st.binary(max_size=48), mutated(json.dumps(doc).encode())))
    return body, DIGITS


@given(bodies())
def test_torchserve_body_decodes_or_is_refused(case):
    body, signature = case

    def decode() -> list:
        parsed = torchserve.tensor_body(body)
        metadata = signature if parsed.needs_metadata else None
        inputs, _ = torchserve.body_tensors(parsed, metadata, LIMIT)
        return inputs

    with traced():
        tensors = decoded_or_refused(decode, body, ALLOWED)
    if tensors is not None:
        check_tensors(tensors)


@given(
    st.one_of(
        st.binary(max_size=48),
        st.dictionaries(st.text(max_size=4), st.binary(max_size=8), max_size=3).map(
            lambda entries: ts.PredictionsRequest(model_name="m", input=entries).SerializeToString()
        ),
    ).flatmap(lambda body: st.one_of(st.just(body), mutated(body)))
)
def test_predictions_request_parses_or_is_refused(body):
    with traced():
        decoded_or_refused(lambda: torchserve.single_body(body), body)
        decoded_or_refused(lambda: torchserve.retarget_predictions_request(body, "m", "1"), body)
