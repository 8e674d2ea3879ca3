"""Hostile shapes are refused from the shape alone: a clear 400/413 naming the input and the
limit, in well under 10 ms and without allocating the tensor; and nothing the gateway writes for
a backend exceeds the limit it enforces on what it receives."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable, Iterator

import numpy as np
import orjson
import pytest

from gateway.codecs import oip_grpc, oip_json, tfserving_json, torchserve
from gateway.codecs.limits import MAX_RANK
from gateway.codecs.tfserving_grpc import predict_request_from_tensors, predict_request_tensors
from gateway.codecs.upstream_limit import (
    CHUNK_ELEMENTS,
    NUMPY,
    BodyBudget,
    json_numbers,
    json_upper_bound,
)
from gateway.errors import GatewayError, InvalidInput, PayloadTooLarge
from gateway.inference import InferRequest, ModelMetadata, Tensor, TensorSpec
from gateway.wire import oip_pb2 as oip
from gateway.wire import tensorflow_pb2 as tf
from gateway.wire import tensorflow_serving_pb2 as tfs

LIMIT = 64 * 1024 * 1024
MIB = 1024 * 1024
FAST_S = 0.010
SIGNATURE = ModelMetadata(
    "tensorflow", (TensorSpec("input", "FP32", (-1, 64)),), (TensorSpec("p", "FP32", (-1, 10)),)
)


def predict(shape: list[int], dtype: int = tf.DT_FLOAT, **values: list) -> tfs.PredictRequest:
    message = tfs.PredictRequest()
    message.model_spec.name = "digits"
    tensor = message.inputs["input"]
    tensor.dtype = dtype  # type: ignore[assignment]
    for size in shape:
        tensor.tensor_shape.dim.add().size = size
    for field, items in (values or {"float_val": [0.5]}).items():
        getattr(tensor, field).extend(items)
    return message


def refused(decode: Callable[[], object], error: type[GatewayError]) -> tuple[str, float, int]:
    """The refusal's message, how long it took (the best of three: a loaded machine may pause
    any one run, but none allocates gigabytes in 10 ms) and the peak of traced allocations."""
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        with pytest.raises(error):
            decode()
        timings.append(time.perf_counter() - started)
    tracemalloc.start()
    try:
        with pytest.raises(error) as raised:
            decode()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return raised.value.message, min(timings), peak


def oip_body(*inputs: dict) -> bytes:
    return orjson.dumps({"inputs": list(inputs)})


def binary_input(name: str, shape: list[int], size: int = 4) -> dict:
    parameters = {"binary_data_size": size}
    return {"name": name, "datatype": "FP32", "shape": shape, "parameters": parameters}


def decode_binary(*inputs: dict) -> InferRequest:
    head = oip_body(*inputs)
    tail = b"\0" * sum(item["parameters"]["binary_data_size"] for item in inputs)
    return oip_json.decode_request(head + tail, len(head), "m", None, limit=LIMIT)


def test_a_43_byte_predict_that_broadcasts_to_gigabytes_is_refused_before_allocating():
    body = predict([6_400_000, 64]).SerializeToString()
    assert len(body) <= 43
    message, elapsed, peak = refused(
        lambda: predict_request_tensors(tfs.PredictRequest.FromString(body), LIMIT),
        PayloadTooLarge,
    )
    assert message == (
        "input 'input': shape [6400000, 64] of FP32 takes 1638400000 bytes, "
        "over the 67108864-byte limit (server.max_request_bytes)"
    )
    assert elapsed < FAST_S
    assert peak < MIB


@pytest.mark.parametrize(
    ("decode", "error", "expected"),
    [
        (
            lambda: predict_request_tensors(predict([10**9, 10**9]), LIMIT),
            PayloadTooLarge,
            "input 'input': shape [1000000000, 1000000000] of FP32 takes 4000000000000000000",
        ),
        (
            lambda: predict_request_tensors(predict([1] * 65), LIMIT),
            InvalidInput,
            f"input 'input': shape has 65 dimensions, at most {MAX_RANK} are supported",
        ),
        (
            lambda: predict_request_tensors(predict([2, -1]), LIMIT),
            InvalidInput,
            "input 'input': shape [2, -1] has a negative dimension",
        ),
        (  # one 1 KiB string that would fill 100,000 elements: each counts its length
            lambda: predict_request_tensors(
                predict([100_000], tf.DT_STRING, string_val=[b"x" * 1024]), LIMIT
            ),
            PayloadTooLarge,
            "shape [100000] of BYTES takes 103200000 bytes",
        ),
        (
            lambda: predict_request_tensors(predict([0, 10**12]), LIMIT),
            PayloadTooLarge,
            "dimension 1000000000000 of shape [0, 1000000000000] is larger than the",
        ),
        (
            lambda: predict_request_tensors(predict([2], tf.DT_UINT8, int_val=[1, 300]), LIMIT),
            InvalidInput,
            "input 'input': a value is out of range for DT_UINT8",
        ),
        (
            lambda: oip_json.decode_request(
                oip_body({"name": "x", "datatype": ["FP32"], "shape": [1], "data": [1]}),
                None,
                "m",
                None,
                limit=LIMIT,
            ),
            InvalidInput,
            "input 'x': unknown datatype ['FP32'] (one of BOOL",
        ),
        (
            lambda: decode_binary(binary_input("x", [1] * 65)),
            InvalidInput,
            "input 'x': shape has 65 dimensions",
        ),
        (
            lambda: decode_binary(binary_input("x", [10**9, 10**9])),
            PayloadTooLarge,
            "input 'x': shape [1000000000, 1000000000] of FP32 takes",
        ),
        (  # each fits, together they do not
            lambda: decode_binary(binary_input("a", [10, MIB]), binary_input("b", [10, MIB])),
            PayloadTooLarge,
            "input 'b': shape [10, 1048576] of FP32 takes 41943040 bytes, 83886080 with the "
            "inputs before it, over the 67108864-byte limit",
        ),
        (
            lambda: oip_grpc.decode_request(
                oip.ModelInferRequest(
                    inputs=[{"name": "x", "datatype": "FP32", "shape": [1] * 65}],
                    raw_input_contents=[b"\0" * 4],
                ),
                LIMIT,
            ),
            InvalidInput,
            "input 'x': shape has 65 dimensions",
        ),
        (
            lambda: oip_grpc.decode_request(
                oip.ModelInferRequest(
                    inputs=[{"name": "x", "datatype": "INT64", "shape": [10**9, 10**9]}],
                    raw_input_contents=[b"\0" * 8],
                ),
                LIMIT,
            ),
            PayloadTooLarge,
            "input 'x': shape [1000000000, 1000000000] of INT64 takes 8000000000000000000",
        ),
    ],
)
def test_hostile_shapes_are_refused_from_the_shape(decode, error, expected):
    message, elapsed, peak = refused(decode, error)
    assert expected in message
    assert elapsed < FAST_S
    assert peak < MIB


def nested(depth: int, leaf: object) -> bytes:
    """JSON lists ``depth`` deep around ``leaf``: what a client can send (orjson reads up to 1024
    levels, and writes fewer)."""
    return b"[" * depth + orjson.dumps(leaf) + b"]" * depth


@pytest.mark.parametrize(
    ("value", "datatype", "expected"),
    [
        (nested(1000, 1.0), "FP32", "values must form a rectangular array"),
        (nested(40, 1.0), "FP32", "shape has 40 dimensions"),
        (nested(1000, {"b64": "AA=="}), "BYTES", "nested deeper than 32 dimensions"),
        (b'[["a"], ["b", "c"]]', "BYTES", "string values must form a rectangular array"),
        (b'["a", ["b"]]', "BYTES", "string values must form a rectangular array"),
        (b'["", [], ""]', "BYTES", "string values must form a rectangular array"),  # fuzz found
    ],
)
def test_tf_json_nesting_is_checked_without_recursing(value, datatype, expected):
    signature = ModelMetadata("tf", (TensorSpec("input", datatype, (-1,)),), ())
    doc = orjson.loads(b'{"inputs": ' + value + b"}")
    message, elapsed, _ = refused(
        lambda: tfserving_json.decode_predict_request(doc, signature, LIMIT), InvalidInput
    )
    assert expected in message
    assert elapsed < FAST_S


def test_tf_json_values_are_charged_to_the_limit():
    doc = {"instances": [[0.5] * 64] * 64}
    tensors = tfserving_json.decode_predict_request(doc, SIGNATURE, 64 * 64 * 4).inputs
    assert tensors[0].data.shape == (64, 64)
    with pytest.raises(PayloadTooLarge, match="shape \\[64, 64\\] of FP32 takes 16384 bytes"):
        tfserving_json.decode_predict_request(doc, SIGNATURE, 64 * 64 * 4 - 1)


def test_a_torchserve_body_is_decoded_within_the_limit():
    body = oip_body(binary_input("x", [10**6]) | {"data": [0.0]})
    with pytest.raises(PayloadTooLarge, match="input 'x': shape \\[1000000\\] of FP32"):
        torchserve.body_tensors(torchserve.tensor_body(body), None, 1024)


# --- what goes upstream ---------------------------------------------------------------------


def tensor(shape: tuple[int, ...], dtype: str = "float32", fill: float = 0.0) -> Tensor:
    datatype = {"float32": "FP32", "int64": "INT64", "bool": "BOOL"}[dtype]
    return Tensor("input", datatype, np.full(shape, fill, dtype=dtype))


@pytest.fixture
def traced() -> Iterator[None]:
    tracemalloc.start()
    yield
    tracemalloc.stop()


def test_the_38_byte_predict_that_became_73_mib_for_torchserve_is_refused():
    body = predict([300_000, 64]).SerializeToString()
    assert len(body) < 50  # the was 38 bytes, with shorter names
    message, elapsed, peak = refused(
        lambda: predict_request_tensors(tfs.PredictRequest.FromString(body), LIMIT),
        PayloadTooLarge,
    )
    assert "takes 76800000 bytes, over the 67108864-byte limit" in message
    assert elapsed < FAST_S
    assert peak < MIB


def test_json_for_a_backend_that_would_exceed_the_limit_is_refused_as_it_grows(traced):
    # 4 MiB of float32 fits the limit decoded; as JSON it takes about 12 bytes per element.
    values = Tensor("input", "FP32", np.random.default_rng(0).random((1024, 1024), np.float32))
    request = InferRequest("digits")
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    with pytest.raises(PayloadTooLarge) as raised:
        oip_json.encode_request(request, [values], 5 * MIB)
    assert raised.value.message == (
        "input 'input': the request as OIP JSON for the backend would take more than the "
        "5242880-byte limit (server.max_request_bytes)"
    )
    # The limit and one slice in the making (the whole JSON would take 12 MiB, and orjson
    # holds about three times what it writes).
    assert tracemalloc.get_traced_memory()[1] - before < 8 * MIB
    with pytest.raises(PayloadTooLarge, match="TF Serving JSON for the backend"):
        tfserving_json.encode_predict_request([values], "serving_default", 5 * MIB)
    with pytest.raises(PayloadTooLarge, match="PredictRequest for the backend"):
        predict_request_from_tensors([values], [], "digits", 1, "serving_default", 4 * MIB)
    with pytest.raises(PayloadTooLarge, match="binary tensor extension for the backend"):
        oip_json.encode_binary_request(request, [values], 4 * MIB)


@pytest.mark.parametrize(
    "shape", [(300_000,), (3, 70_000), (70_000, 3), (1, 1, 140_000), (2, 0, 5), ()]
)
def test_json_written_in_slices_is_what_orjson_writes(shape):
    rng = np.random.default_rng(1)
    array = rng.random(shape, np.float32) if shape else np.full((), 0.25, np.float32)
    budget = BodyBudget(13 * array.size + 100, "test body")  # below the upper bound of 17
    value = json_numbers(array, budget, "x")
    expected = orjson.dumps(array.reshape(1), option=NUMPY)[1:-1] if not shape else None
    assert orjson.dumps({"v": value}, option=NUMPY) == orjson.dumps(
        {"v": orjson.Fragment(expected) if expected else array}, option=NUMPY
    )
    assert array.size <= CHUNK_ELEMENTS or isinstance(value, orjson.Fragment)


def test_json_within_the_upper_bound_is_the_array_itself():
    array = np.zeros((8, 64), np.float32)
    assert json_numbers(array, BodyBudget(LIMIT, "test body"), "x") is array


def test_a_broadcast_that_fits_is_sent_within_the_limit():
    tensors = predict_request_tensors(predict([1000, 64]), LIMIT)
    body = oip_json.encode_request(InferRequest("digits"), tensors, LIMIT)
    assert len(body) < LIMIT
    assert orjson.loads(body)["inputs"][0]["data"] == [0.5] * 64_000


# The longest values orjson writes for each dtype.
WORST = [
    np.array([False]),
    np.array([-128], np.int8),
    np.array([255], np.uint8),
    np.array([-32768], np.int16),
    np.array([65535], np.uint16),
    np.array([-(2**31)], np.int32),
    np.array([2**32 - 1], np.uint32),
    np.array([-(2**63)], np.int64),
    np.array([2**64 - 1], np.uint64),
    np.array([-0.000061035156], np.float16),
    np.array([-1.1754944e-38], np.float32),
    np.array([-2.2250738585072014e-308]),
]


@pytest.mark.parametrize("worst", WORST, ids=lambda a: a.dtype.name)
@pytest.mark.parametrize(
    "shape",
    [(1,), (3,), (2, 3), (1, 1, 5), (4, 1, 1, 1), (1,) * 31 + (2,), (0,), (3, 0), (2, 0, 4)],
)
def test_the_json_upper_bound_holds_for_the_longest_values(worst, shape):
    array = np.full(shape, worst[0], dtype=worst.dtype)
    assert len(orjson.dumps(array, option=NUMPY)) <= json_upper_bound(array)
