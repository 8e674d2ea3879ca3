"""What goes over the worker's socket to its shadow process: frames split from any chunking,
and a job rebuilt there as the request and the primary's answer the worker had."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from gateway.errors import BackendError
from gateway.inference import Formats, InferRequest, Payload, RequestedOutput, Tensor
from gateway.shadow.frames import FrameReader, frame
from gateway.shadow.job import (
    decode_job,
    needs_inputs,
    rebuilt_request,
    rebuilt_response,
    wire_of,
)

BODY = b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1,2],"data":[1.5,2.5]}]}'
REPLY = b'{"model_name":"m","outputs":[{"name":"y","datatype":"INT64","shape":[2],"data":[3,4]}]}'


def test_frames_come_out_whole_however_the_bytes_arrive():
    messages = [("job", i, b"x" * (i * 1000)) for i in range(5)]
    stream = b"".join(frame(m) for m in messages)
    reader = FrameReader()
    got = []
    for start in range(0, len(stream), 777):
        got += reader.feed(stream[start : start + 777])
    assert got == messages
    assert reader.feed(b"") == []


def through_the_socket(request: InferRequest, answer: object) -> object:
    wire = wire_of(request, "a", answer)  # type: ignore[arg-type]
    (message,) = FrameReader().feed(frame(("jobs", [wire])))
    return decode_job(message[1][0])


def test_a_forwarded_body_and_a_json_answer_are_decoded_in_the_shadow_process():
    request = InferRequest("m", "1", payload=Payload(Formats.OIP_JSON, BODY), id="r1")
    request.outputs = [RequestedOutput("y", True)]
    assert not needs_inputs(request)
    job = through_the_socket(request, Payload(Formats.OIP_JSON, REPLY, "application/json"))
    rebuilt = rebuilt_request(job, 1 << 20)  # type: ignore[arg-type]
    assert (rebuilt.model, rebuilt.version, rebuilt.id) == ("m", "1", "r1")
    assert rebuilt.outputs == [RequestedOutput("y", True)]
    assert rebuilt.payload == Payload(Formats.OIP_JSON, BODY)
    inputs = asyncio.run(rebuilt.input_tensors())
    np.testing.assert_array_equal(inputs[0].data, np.array([[1.5, 2.5]], dtype=np.float32))
    outputs = asyncio.run(rebuilt_response(job, "u1").output_tensors())  # type: ignore[arg-type]
    assert outputs[0].name == "y"
    np.testing.assert_array_equal(outputs[0].data, np.array([3, 4]))


def test_decoded_tensors_go_as_they_are_bytes_included_and_an_unreadable_answer_says_why():
    words = np.array([b"a", b"bc"], dtype=object)
    request = InferRequest("m", inputs=[Tensor("w", "BYTES", words)])
    request.payload = Payload(Formats.TFS_PREDICT_JSON, b"{}")
    assert not needs_inputs(request)
    job = through_the_socket(request, "reply of u1 unreadable")
    rebuilt = rebuilt_request(job, 1 << 20)  # type: ignore[arg-type]
    assert list(rebuilt.inputs[0].data) == [b"a", b"bc"]  # type: ignore[index]
    with pytest.raises(BackendError, match="reply of u1 unreadable"):
        asyncio.run(rebuilt_response(job, "u1").output_tensors())  # type: ignore[arg-type]
    undecoded = InferRequest("m", payload=Payload(Formats.TFS_PREDICT_JSON, b"{}"))
    assert needs_inputs(undecoded)  # its decoder needs the worker's metadata: decoded there
