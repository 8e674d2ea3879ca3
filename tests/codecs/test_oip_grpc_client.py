"""The gateway's side of an OIP gRPC backend: requests it builds, requests and replies it forwards.

Every message is read or built with tritonclient's own generated messages (package
``inference``), so each test also checks that the gateway's copy and the views agree on the wire.
"""

import struct

import numpy as np
import pytest
from tritonclient.grpc import service_pb2

from gateway.codecs.oip_grpc_client import (
    infer_request,
    infer_response_tensors,
    rename_infer_response,
    retarget_infer_request,
)
from gateway.errors import InvalidInput, PayloadTooLarge
from gateway.inference import InferRequest, RequestedOutput, Tensor

LIMIT = 1 << 20


def test_a_request_from_tensors_sends_every_input_raw():
    pixels = np.arange(128, dtype=np.float32).reshape(2, 64)
    words = np.array([b"a", b"bcd"], dtype=object)
    request = InferRequest(
        "public",
        id="r-7",
        outputs=[RequestedOutput("probabilities")],
        parameters={"timeout": 5000, "signature_name": "serving_default"},
    )
    tensors = [Tensor("input", "FP32", pixels), Tensor("words", "BYTES", words, {"tag": True})]
    sent = service_pb2.ModelInferRequest.FromString(
        infer_request(request, tensors, "digits", "2", LIMIT)
    )
    assert (sent.model_name, sent.model_version, sent.id) == ("digits", "2", "r-7")
    assert [(i.name, i.datatype, list(i.shape)) for i in sent.inputs] == [
        ("input", "FP32", [2, 64]),
        ("words", "BYTES", [2]),
    ]
    assert not sent.inputs[0].HasField("contents")
    assert sent.inputs[1].parameters["tag"].bool_param is True
    assert sent.raw_input_contents[0] == pixels.astype("<f4").tobytes()
    assert sent.raw_input_contents[1] == struct.pack("<I", 1) + b"a" + struct.pack("<I", 3) + b"bcd"
    assert [o.name for o in sent.outputs] == ["probabilities"]
    assert sent.parameters["timeout"].int64_param == 5000
    assert sent.parameters["signature_name"].string_param == "serving_default"


def clients_request():
    message = service_pb2.ModelInferRequest(model_name="public", model_version="canary", id="x")
    message.parameters["priority"].int64_param = 3
    typed = message.inputs.add(name="typed", datatype="INT32", shape=[3])
    typed.contents.int_contents.extend([1, -2, 3])
    typed.parameters["note"].string_param = "kept"
    message.outputs.add(name="probabilities").parameters["binary_data"].bool_param = True
    return message


def test_a_clients_request_is_retargeted_with_everything_else_kept():
    message = clients_request()
    forwarded = retarget_infer_request(message.SerializeToString(), "digits", "2")
    parsed = service_pb2.ModelInferRequest.FromString(forwarded)
    expected = clients_request()
    expected.model_name, expected.model_version = "digits", "2"
    assert parsed == expected

    raw = service_pb2.ModelInferRequest(model_name="public")
    raw.inputs.add(name="input", datatype="FP32", shape=[1, 2])
    raw.raw_input_contents.append(np.array([0.5, 1.5], dtype=np.float32).tobytes())
    parsed = service_pb2.ModelInferRequest.FromString(
        retarget_infer_request(raw.SerializeToString(), "digits", "")
    )
    assert (parsed.model_name, parsed.model_version) == ("digits", "")
    assert parsed.raw_input_contents == raw.raw_input_contents


def test_a_reply_is_renamed_and_its_tensors_kept():
    reply = service_pb2.ModelInferResponse(model_name="digits", model_version="2", id="x")
    reply.parameters["sequence_end"].bool_param = True
    reply.outputs.add(name="probabilities", datatype="FP32", shape=[1, 2])
    reply.raw_output_contents.append(np.array([0.25, 0.75], dtype=np.float32).tobytes())
    renamed = service_pb2.ModelInferResponse.FromString(
        rename_infer_response(reply.SerializeToString(), "numbers", "2")
    )
    reply.model_name = "numbers"
    assert renamed == reply


def test_reply_tensors_raw_and_typed():
    raw = service_pb2.ModelInferResponse(model_name="digits")
    raw.outputs.add(name="probabilities", datatype="FP32", shape=[2, 2])
    raw.outputs.add(name="labels", datatype="BYTES", shape=[1])
    raw.raw_output_contents.extend(
        [
            np.array([[0.1, 0.9], [0.8, 0.2]], dtype=np.float32).tobytes(),
            struct.pack("<I", 2) + b"ok",
        ]
    )
    probabilities, labels = infer_response_tensors(raw.SerializeToString(), LIMIT)
    assert probabilities.shape == (2, 2)
    np.testing.assert_array_equal(
        probabilities.data, np.array([[0.1, 0.9], [0.8, 0.2]], dtype=np.float32)
    )
    assert labels.data.tolist() == [b"ok"]

    typed = service_pb2.ModelInferResponse(model_name="digits")
    entry = typed.outputs.add(name="counts", datatype="UINT8", shape=[3])
    entry.contents.uint_contents.extend([0, 7, 255])
    (counts,) = infer_response_tensors(typed.SerializeToString(), LIMIT)
    assert counts.data.dtype == np.uint8
    assert counts.data.tolist() == [0, 7, 255]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda r: r.raw_output_contents.append(b"\0" * 4), "raw_output_contents has 1 entries"),
        (lambda r: setattr(r.outputs[0], "datatype", "FP8"), "unknown datatype 'FP8'"),
        (lambda r: r.outputs[0].contents.fp32_contents.append(1.0), "needs 2 values"),
    ],
)
def test_unreadable_replies_say_what_is_wrong(build, message):
    reply = service_pb2.ModelInferResponse(model_name="digits")
    reply.outputs.add(name="a", datatype="FP32", shape=[2])
    reply.outputs.add(name="b", datatype="FP32", shape=[0])
    build(reply)
    with pytest.raises(InvalidInput, match=message):
        infer_response_tensors(reply.SerializeToString(), LIMIT)
    with pytest.raises(InvalidInput, match="not a valid ModelInferResponse"):
        infer_response_tensors(b"\xff\xff", LIMIT)


def test_requests_and_replies_stay_within_the_limit():
    big = Tensor("input", "FP32", np.zeros((1, 1024), dtype=np.float32))  # 4096 bytes raw
    with pytest.raises(PayloadTooLarge, match="ModelInferRequest for the backend"):
        infer_request(InferRequest("digits"), [big], "digits", "1", 4000)
    assert infer_request(InferRequest("digits"), [big], "digits", "1", 8192)
    reply = service_pb2.ModelInferResponse(model_name="digits")
    reply.outputs.add(name="out", datatype="FP32", shape=[1, 1 << 40])  # claims 4 TiB
    reply.raw_output_contents.append(b"")
    with pytest.raises(PayloadTooLarge, match="output 'out'"):
        infer_response_tensors(reply.SerializeToString(), LIMIT)
