import asyncio
import struct

import numpy as np
import orjson
import pytest

from gateway.codecs import oip_json
from gateway.codecs.oip_raw import tensor_bytes
from gateway.errors import BackendError, InvalidInput
from gateway.inference import InferRequest, InferResponse, Tensor

LIMIT = 1 << 20


def decode_request(body, json_length, model, version, lazy=False):
    return oip_json.decode_request(body, json_length, model, version, limit=LIMIT, lazy=lazy)


def first_input(request: InferRequest) -> Tensor:
    assert request.inputs is not None
    return request.inputs[0]


def body(inputs, **extra):
    return orjson.dumps({"inputs": inputs, **extra})


def fp32_input(data, shape=(1, 4)):
    return {"name": "input", "datatype": "FP32", "shape": list(shape), "data": data}


def test_json_request_flat_and_nested_decode_to_the_same_array():
    flat = decode_request(body([fp32_input([1, 2, 3, 4])]), None, "m", None)
    nested = decode_request(body([fp32_input([[1, 2], [3, 4]], (2, 2))]), None, "m", "1")
    assert first_input(flat).data.dtype == np.float32
    assert first_input(flat).shape == (1, 4)
    assert first_input(nested).shape == (2, 2)
    assert nested.version == "1"
    np.testing.assert_array_equal(first_input(flat).data.ravel(), first_input(nested).data.ravel())


def test_json_request_keeps_original_body_for_forwarding():
    raw = body([fp32_input([1, 2, 3, 4])], id="abc")
    request = decode_request(raw, None, "m", None)
    assert request.payload is not None
    assert request.payload.body is raw
    assert request.id == "abc"


def test_binary_request_round_trip():
    array = np.arange(8, dtype=np.float32).reshape(2, 4)
    blob = array.tobytes()
    head = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "datatype": "FP32",
                    "shape": [2, 4],
                    "parameters": {"binary_data_size": len(blob)},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    )
    request = decode_request(head + blob, len(head), "m", None)
    np.testing.assert_array_equal(first_input(request).data, array)
    assert request.binary_output is True
    assert request.payload is not None
    assert request.payload.json_length == len(head)
    forwarded = orjson.loads(oip_json.encode_request(request, [first_input(request)], LIMIT))
    assert forwarded["inputs"][0]["data"] == array.ravel().tolist()


def test_bytes_tensor_binary_and_json():
    items = [b"ab", b"", b"xyz"]
    blob = b"".join(struct.pack("<I", len(i)) + i for i in items)
    head = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "s",
                    "datatype": "BYTES",
                    "shape": [3],
                    "parameters": {"binary_data_size": len(blob)},
                }
            ]
        }
    )
    request = decode_request(head + blob, len(head), "m", None)
    assert first_input(request).data.tolist() == items
    as_json = decode_request(
        body([{"name": "s", "datatype": "BYTES", "shape": [3], "data": ["ab", "", "xyz"]}]),
        None,
        "m",
        None,
    )
    assert first_input(as_json).data.tolist() == items
    assert tensor_bytes(first_input(as_json)) == blob


@pytest.mark.parametrize(
    ("raw", "json_length", "message"),
    [
        (b"{not json", None, "not valid JSON"),
        (b"[]", None, "must be a JSON object"),
        (body([]), None, "'inputs' must be a non-empty list"),
        (
            body([fp32_input([1, 2, 3])]),
            None,
            "input 'input': shape [1, 4] needs 4 values, data has 3",
        ),
        (
            body([fp32_input(["a", "b", "c", "d"])]),
            None,
            "input 'input': data must hold FP32 values",
        ),
        (body([{**fp32_input([1, 2, 3, 4]), "datatype": "FP99"}]), None, "unknown datatype 'FP99'"),
        (
            body([{**fp32_input([1, 2, 3, 4]), "shape": [1, -4]}]),
            None,
            "shape must be a list of non-negative",
        ),
        (
            body([{"name": "x", "datatype": "INT8", "shape": [1], "data": [300]}]),
            None,
            "out of range for INT8",
        ),
        (
            body([{"name": "x", "datatype": "INT32", "shape": [1], "data": [1.5]}]),
            None,
            "must hold INT32",
        ),
        (body([{"name": "x", "datatype": "FP32", "shape": [1]}]), None, "has neither 'data' nor"),
        (body([fp32_input([[1, 2], [3]], (1, 3))]), None, "input 'input'"),
        (body([fp32_input([1, 2, 3, 4])]), 10_000, "Inference-Header-Content-Length is 10000"),
    ],
)
def test_malformed_requests_name_the_problem(raw, json_length, message):
    with pytest.raises(InvalidInput, match=message.replace("[", r"\[").replace("]", r"\]")):
        decode_request(raw, json_length, "m", None)


def test_binary_size_mismatch_is_named():
    head = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "datatype": "FP32",
                    "shape": [1, 4],
                    "parameters": {"binary_data_size": 12},
                }
            ]
        }
    )
    with pytest.raises(
        InvalidInput, match=r"binary data has 12 bytes, shape \[1, 4\] of FP32 needs 16"
    ):
        decode_request(head + b"\0" * 12, len(head), "m", None)
    exact = head.replace(b"12", b"16")
    with pytest.raises(
        InvalidInput, match="4 bytes of binary data follow the JSON that no input claims"
    ):
        decode_request(exact + b"\0" * 20, len(exact), "m", None)


def response():
    probs = np.full((1, 10), 0.1, dtype=np.float32)
    return InferResponse("digits", "2", [Tensor("probabilities", "FP32", probs)], id="r1")


def test_encode_json_response():
    request = decode_request(body([fp32_input([1, 2, 3, 4])]), None, "digits", None)
    payload, binary_from = oip_json.encode_response(response().outputs, response(), request)
    assert binary_from is None
    doc = orjson.loads(payload)
    assert doc["model_name"] == "digits"
    assert doc["model_version"] == "2"
    assert doc["id"] == "r1"
    assert doc["outputs"][0]["shape"] == [1, 10]
    assert np.allclose(doc["outputs"][0]["data"], 0.1)


def test_encode_binary_response_when_asked_per_output():
    request = decode_request(
        body(
            [fp32_input([1, 2, 3, 4])],
            outputs=[{"name": "probabilities", "parameters": {"binary_data": True}}],
        ),
        None,
        "digits",
        None,
    )
    payload, binary_from = oip_json.encode_response(response().outputs, response(), request)
    head = orjson.loads(payload[:binary_from])
    assert head["outputs"][0]["parameters"]["binary_data_size"] == 40
    values = np.frombuffer(payload[binary_from:], dtype=np.float32)
    assert values.shape == (10,)
    assert np.all(values == np.float32(0.1))


def test_unknown_requested_output_is_named():
    request = decode_request(
        body([fp32_input([1, 2, 3, 4])], outputs=[{"name": "logits"}]), None, "digits", None
    )
    with pytest.raises(
        InvalidInput,
        match="unknown output 'logits' requested; model 'digits' has outputs: probabilities",
    ):
        oip_json.encode_response(response().outputs, response(), request)


def test_unreadable_backend_response_is_a_backend_error():
    with pytest.raises(BackendError, match="backend 'ts' sent an unreadable response"):
        oip_json.decode_response(
            b'{"outputs": [{"name": "p", "datatype": "FP32", "shape": [2], "data": [1]}]}',
            None,
            "ts",
        )
    with pytest.raises(BackendError):
        oip_json.decode_response(b"<html>", None, "ts")


def test_binary_backend_response_and_lazy_request():
    blob = np.arange(4, dtype=np.float32).tobytes()
    head = orjson.dumps(
        {
            "model_name": "m",
            "outputs": [
                {
                    "name": "y",
                    "datatype": "FP32",
                    "shape": [2, 2],
                    "parameters": {"binary_data_size": 16},
                }
            ],
        }
    )
    response = oip_json.decode_response(head + blob, len(head), "oip")
    assert response.outputs is not None
    np.testing.assert_array_equal(response.outputs[0].data, np.arange(4).reshape(2, 2))
    lazy = decode_request(body([fp32_input(list("abcd"))]), None, "m", None, lazy=True)
    assert lazy.inputs is None  # parsed and sized, but values are only converted when needed
    with pytest.raises(InvalidInput, match="needs 4 values, data has 3"):
        decode_request(body([fp32_input([1, 2, 3])]), None, "m", None, lazy=True)


def test_lazy_inputs_raise_when_needed():
    lazy = decode_request(body([fp32_input(list("abcd"))]), None, "m", None, lazy=True)
    with pytest.raises(InvalidInput, match="data must hold FP32 values"):
        asyncio.run(lazy.input_tensors())
    binary, length = oip_json.encode_binary_request(
        decode_request(body([fp32_input([1, 2, 3, 4])]), None, "m", None),
        [Tensor("input", "FP32", np.ones((1, 4), dtype=np.float32))],
        LIMIT,
    )
    again = decode_request(binary, length, "m", None)
    np.testing.assert_array_equal(first_input(again).data, np.ones((1, 4)))


def test_rename_response_keeps_tensors_untouched():
    blob = np.arange(4, dtype=np.float32).tobytes()
    head = orjson.dumps(
        {
            "model_name": "m",
            "model_version": "7",
            "outputs": [
                {
                    "name": "y",
                    "datatype": "FP32",
                    "shape": [4],
                    "parameters": {"binary_data_size": 16},
                }
            ],
        }
    )
    renamed, length = oip_json.rename_response(head + blob, len(head), "public", "1")
    assert renamed.endswith(blob)
    doc = orjson.loads(renamed[:length])
    assert (doc["model_name"], doc["model_version"]) == ("public", "1")
    assert doc["outputs"][0]["parameters"] == {"binary_data_size": 16}
    as_json, none = oip_json.rename_response(b'{"model_name": "m", "outputs": []}', None, "p", "2")
    assert none is None
    assert orjson.loads(as_json) == {"model_name": "p", "outputs": [], "model_version": "2"}
