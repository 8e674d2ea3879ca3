"""Open Inference Protocol gRPC messages <-> tensors.

Requests are built with tritonclient's own generated messages (package ``inference``) and read
with the gateway's copy, so every test also checks that the two agree on the wire.
"""

import struct

import numpy as np
import pytest
from tritonclient.grpc import service_pb2

from gateway.codecs import oip_grpc
from gateway.codecs.oip_raw import timeout_s
from gateway.errors import InvalidInput
from gateway.inference import InferRequest, InferResponse, RequestedOutput, Tensor
from gateway.wire import oip_pb2 as oip


def decode(message) -> InferRequest:
    return oip_grpc.decode_request(
        oip.ModelInferRequest.FromString(message.SerializeToString()), 1 << 20
    )


def request(*inputs, raw=(), **fields):
    message = service_pb2.ModelInferRequest(model_name="digits", **fields)
    for name, datatype, shape, contents in inputs:
        entry = message.inputs.add(name=name, datatype=datatype, shape=shape)
        for field, values in (contents or {}).items():
            getattr(entry.contents, field).extend(values)
    message.raw_input_contents.extend(raw)
    return message


def only_input(decoded: InferRequest) -> Tensor:
    assert decoded.inputs is not None
    assert len(decoded.inputs) == 1
    return decoded.inputs[0]


def length_prefixed(*items: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


def test_raw_fp32_input_is_wrapped_without_a_copy():
    array = np.arange(128, dtype=np.float32).reshape(2, 64)
    decoded = decode(request(("input", "FP32", [2, 64], None), raw=[array.tobytes()]))
    tensor = only_input(decoded)
    assert tensor.datatype == "FP32"
    assert tensor.shape == (2, 64)
    np.testing.assert_array_equal(tensor.data, array)
    assert not tensor.data.flags.owndata  # a view of the message's bytes
    assert decoded.model == "digits"
    assert decoded.version is None


def test_raw_content_of_the_wrong_size_names_the_input():
    message = request(("input", "FP32", [1, 64], None), raw=[b"\0" * 252])
    with pytest.raises(InvalidInput) as raised:
        decode(message)
    assert raised.value.message == (
        "input 'input': raw content has 252 bytes, shape [1, 64] of FP32 needs 256"
    )


def test_raw_bytes_are_length_prefixed_elements():
    blob = length_prefixed(b"a", b"", b"xyz", b"\xff")
    tensor = only_input(decode(request(("text", "BYTES", [2, 2], None), raw=[blob])))
    assert tensor.data.shape == (2, 2)
    assert tensor.data.ravel().tolist() == [b"a", b"", b"xyz", b"\xff"]


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (length_prefixed(b"a") + b"\x05\0", "length prefix is cut short"),
        (length_prefixed(b"a") + struct.pack("<I", 9) + b"abc", "9 bytes is cut short"),
        (length_prefixed(b"a"), "shape needs 2 BYTES elements, raw content has 1"),
    ],
)
def test_malformed_raw_bytes(blob, message):
    with pytest.raises(InvalidInput, match=message):
        decode(request(("text", "BYTES", [2], None), raw=[blob]))


def test_raw_fp16_is_accepted_though_it_has_no_typed_field():
    array = np.array([0.5, -2.0], dtype=np.float16)
    tensor = only_input(decode(request(("half", "FP16", [2], None), raw=[array.tobytes()])))
    np.testing.assert_array_equal(tensor.data, array)


@pytest.mark.parametrize(
    ("datatype", "field", "values", "dtype"),
    [
        ("BOOL", "bool_contents", [True, False], np.bool_),
        ("INT8", "int_contents", [-128, 127], np.int8),
        ("INT32", "int_contents", [-5, 7], np.int32),
        ("INT64", "int64_contents", [-(2**40), 2**40], np.int64),
        ("UINT8", "uint_contents", [0, 255], np.uint8),
        ("UINT64", "uint64_contents", [0, 2**64 - 1], np.uint64),
        ("FP32", "fp32_contents", [0.25, -1.5], np.float32),
        ("FP64", "fp64_contents", [1e-300, 2.5], np.float64),
    ],
)
def test_typed_contents_decode_to_their_datatype(datatype, field, values, dtype):
    tensor = only_input(decode(request(("x", datatype, [1, 2], {field: values}))))
    assert tensor.data.dtype == np.dtype(dtype)
    assert tensor.data.shape == (1, 2)
    assert tensor.data.ravel().tolist() == values


def test_typed_bytes_contents():
    tensor = only_input(decode(request(("x", "BYTES", [2], {"bytes_contents": [b"hi", b""]}))))
    assert tensor.data.tolist() == [b"hi", b""]


@pytest.mark.parametrize(
    ("tensor", "raw", "message"),
    [
        (("x", "INT8", [1], {"int_contents": [300]}), (), "a value is out of range for INT8"),
        (
            ("x", "FP32", [1, 64], {"fp32_contents": [0.5]}),
            (),
            "input 'x': shape [1, 64] needs 64 values, contents.fp32_contents has 1",
        ),
        (("x", "FP16", [1], {"fp32_contents": [0.5]}), (), "FP16 has no typed contents"),
        (("x", "FP99", [1], None), (), "unknown datatype 'FP99'"),
        (("x", "FP32", [-1], None), (), "shape [-1] has a negative dimension"),
        (("x", "FP32", [1], None), (), "input 'x' has no data"),
        (("x", "FP32", [1], {"fp32_contents": [1.0]}), (b"\0" * 4,), "both contents and raw"),
        (("", "FP32", [1], None), (b"\0" * 4,), "every input needs a name"),
    ],
)
def test_invalid_inputs_are_named(tensor, raw, message):
    with pytest.raises(InvalidInput) as raised:
        decode(request(tensor, raw=raw))
    assert message in raised.value.message


def test_raw_contents_must_cover_every_input():
    message = request(("a", "FP32", [1], None), ("b", "FP32", [1], None), raw=[b"\0" * 4])
    with pytest.raises(InvalidInput, match="1 entries for 2 inputs"):
        decode(message)


def test_extensions_that_change_the_meaning_are_refused_not_ignored():
    message = request(("x", "FP32", [1], None), raw=[b"\0" * 4])
    message.inputs[0].parameters["shared_memory_region"].string_param = "region"
    with pytest.raises(InvalidInput, match="input 'x': shared memory is not supported"):
        decode(message)
    message = request(("x", "FP32", [1], None), raw=[b"\0" * 4])
    message.outputs.add(name="probabilities").parameters["classification"].int64_param = 3
    with pytest.raises(InvalidInput, match="output 'probabilities': classification is not"):
        decode(message)


def test_request_fields_parameters_and_requested_outputs():
    message = request(("x", "FP32", [1], {"fp32_contents": [1.0]}), id="req-1", model_version="2")
    message.outputs.add(name="probabilities")
    parameters = message.parameters
    parameters["timeout"].int64_param = 2500
    parameters["priority"].uint64_param = 2**63
    parameters["flag"].bool_param = True
    parameters["ratio"].double_param = 0.5
    parameters["who"].string_param = "me"
    decoded = decode(message)
    assert decoded.id == "req-1"
    assert decoded.version == "2"
    assert [wanted.name for wanted in decoded.outputs] == ["probabilities"]
    assert decoded.parameters == {
        "timeout": 2500,
        "priority": 2**63,
        "flag": True,
        "ratio": 0.5,
        "who": "me",
    }
    assert timeout_s(decoded.parameters) == 0.0025
    assert timeout_s({}) is None
    with pytest.raises(InvalidInput, match="positive integer of microseconds"):
        timeout_s({"timeout": "soon"})


def response_of(*outputs: Tensor, **fields) -> InferResponse:
    return InferResponse("digits", "1", outputs=list(outputs), **fields)


def official(message: oip.ModelInferResponse):
    return service_pb2.ModelInferResponse.FromString(message.SerializeToString())


PROBABILITIES = Tensor(
    "probabilities", "FP32", np.linspace(0, 1, 20, dtype=np.float32).reshape(2, 10)
)


def test_raw_response_carries_each_output_in_order():
    labels = Tensor("labels", "BYTES", np.array([b"three", b"seven"], dtype=object))
    response = response_of(PROBABILITIES, labels, id="req-1", parameters={"note": "x"})
    message = oip_grpc.encode_response(
        [PROBABILITIES, labels], response, InferRequest("digits"), True
    )
    reply = official(message)
    assert (reply.model_name, reply.model_version, reply.id) == ("digits", "1", "req-1")
    assert reply.parameters["note"].string_param == "x"
    assert [(o.name, o.datatype, list(o.shape)) for o in reply.outputs] == [
        ("probabilities", "FP32", [2, 10]),
        ("labels", "BYTES", [2]),
    ]
    assert not reply.outputs[0].HasField("contents")
    np.testing.assert_array_equal(
        np.frombuffer(reply.raw_output_contents[0], dtype="<f4").reshape(2, 10), PROBABILITIES.data
    )
    assert reply.raw_output_contents[1] == length_prefixed(b"three", b"seven")


def test_typed_response_and_requested_outputs():
    other = Tensor("logits", "INT32", np.array([[1, 2]], dtype=np.int32))
    wanted = InferRequest("digits", outputs=[RequestedOutput("probabilities")])
    reply = official(oip_grpc.encode_response([other, PROBABILITIES], response_of(), wanted, False))
    assert [o.name for o in reply.outputs] == ["probabilities"]
    assert not reply.raw_output_contents
    np.testing.assert_allclose(reply.outputs[0].contents.fp32_contents, PROBABILITIES.data.ravel())
    unknown = InferRequest("digits", outputs=[RequestedOutput("nope")])
    with pytest.raises(InvalidInput, match="unknown output 'nope'"):
        oip_grpc.encode_response([PROBABILITIES], response_of(), unknown, False)


def test_an_fp16_output_makes_the_whole_response_raw():
    half = Tensor("half", "FP16", np.array([0.5], dtype=np.float16))
    reply = official(
        oip_grpc.encode_response([PROBABILITIES, half], response_of(), InferRequest("m"), False)
    )
    assert len(reply.raw_output_contents) == 2
    assert not any(o.HasField("contents") for o in reply.outputs)


def test_response_parameters_keep_their_types():
    values = {"flag": False, "big": 2**64 - 1, "small": -3, "ratio": 1.5, "doc": {"a": [1]}}
    message = oip.ModelInferResponse()
    oip_grpc.fill_parameters(message.parameters, values)
    decoded = oip_grpc.parameters_from_proto(message.parameters)
    assert decoded == {**values, "doc": '{"a":[1]}'}
