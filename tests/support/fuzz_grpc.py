"""Hostile gRPC calls for the live fuzz: malformed protobuf to every method of every service the
gateway serves, and raw garbage to its gRPC port.

Bodies go out as bytes (no client-side serializer), so anything can be sent: random bytes,
truncated and bit-flipped messages, and well-formed messages with a wrong value in each field
(walked through the message's descriptor: every string, number, enum, repeated and map field).
"""

from __future__ import annotations

import math
import random
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import grpc
from google.protobuf import empty_pb2
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from gateway.wire import oip_pb2 as oip
from gateway.wire import tensorflow_pb2 as tf
from gateway.wire import tensorflow_serving_pb2 as tfs
from gateway.wire import torchserve_pb2 as ts
from tests.support.fuzz_http import OIP_DOC, PINS, PIXELS, _dumps, _mutated

OIP = "/inference.GRPCInferenceService/"
TFS = "/tensorflow.serving.PredictionService/"
TORCH = "/org.pytorch.serve.grpc.inference.InferenceAPIsService/"
HEALTH = "/grpc.health.v1.Health/"
REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
REFUSED = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
"""What no call may end with: the gateway's own failure, or an exception that escaped it."""

Kind = Literal["unary", "server_stream", "bidi"]


@dataclass(frozen=True)
class GrpcCase:
    what: str
    method: str
    body: bytes
    kind: Kind = "unary"
    metadata: tuple[tuple[str, str], ...] = ()


def float_tensor(shape: list[int], values: list[float]) -> tf.TensorProto:
    tensor = tf.TensorProto(dtype=tf.DT_FLOAT, float_val=values)
    tensor.tensor_shape.dim.extend(tf.TensorShapeProto.Dim(size=size) for size in shape)
    return tensor


def _predict(shape: list[int], values: list[float], raw: bool = False) -> tfs.PredictRequest:
    request = tfs.PredictRequest(model_spec=tfs.ModelSpec(name="digits"))
    tensor = float_tensor(shape, [] if raw else values)
    if raw:
        tensor.tensor_content = struct.pack(f"<{len(values)}f", *values)
    request.inputs["input"].CopyFrom(tensor)
    request.output_filter.append("probabilities")
    return request


def _model_infer(raw: bool) -> oip.ModelInferRequest:
    request = oip.ModelInferRequest(model_name="digits", model_version="1", id="fuzz")
    tensor = request.inputs.add(name="input", datatype="FP32", shape=[1, 64])
    if raw:
        request.raw_input_contents.append(struct.pack("<64f", *PIXELS))
    else:
        tensor.contents.fp32_contents.extend(PIXELS)
    request.outputs.add(name="probabilities")
    request.parameters["timeout"].int64_param = 5_000_000
    return request


def _classify() -> tfs.ClassificationRequest:
    request = tfs.ClassificationRequest(model_spec=tfs.ModelSpec(name="digits"))
    example = request.input.example_list.examples.add()
    example.features.feature["input"].float_list.value.extend(PIXELS)
    return request


SEEDS: list[tuple[str, Message]] = [
    (OIP + "ServerLive", oip.ServerLiveRequest()),
    (OIP + "ServerReady", oip.ServerReadyRequest()),
    (OIP + "ModelReady", oip.ModelReadyRequest(name="digits", version="1")),
    (OIP + "ServerMetadata", oip.ServerMetadataRequest()),
    (OIP + "ModelMetadata", oip.ModelMetadataRequest(name="digits", version="2")),
    (OIP + "ModelInfer", _model_infer(raw=False)),
    (OIP + "ModelInfer", _model_infer(raw=True)),
    (TFS + "Predict", _predict([1, 64], PIXELS)),
    (TFS + "Predict", _predict([1, 64], PIXELS, raw=True)),
    (TFS + "GetModelMetadata", tfs.GetModelMetadataRequest(
        model_spec=tfs.ModelSpec(name="digits"), metadata_field=["signature_def"])),
    (TFS + "Classify", _classify()),
    (TFS + "Regress", tfs.RegressionRequest(model_spec=tfs.ModelSpec(name="digits"))),
    ("/tensorflow.serving.ModelService/GetModelStatus",
     tfs.GetModelStatusRequest(model_spec=tfs.ModelSpec(name="digits"))),
    (TORCH + "Ping", empty_pb2.Empty()),
    (TORCH + "Predictions", ts.PredictionsRequest(
        model_name="digits", model_version="1", input={"body": _dumps(OIP_DOC)})),
]  # fmt: skip
"""A well-formed request for every method."""

_STRINGS = ["", "x" * 10_000, "../../etc/passwd", "\x00", "\U0001f4a5", "nope", "-1", "FP99"]
_BAD: dict[int, list[Any]] = {
    FieldDescriptor.CPPTYPE_INT32: [0, -1, 2**31 - 1, -(2**31)],
    FieldDescriptor.CPPTYPE_INT64: [-1, 2**63 - 1, -(2**63), 1 << 40],
    FieldDescriptor.CPPTYPE_UINT32: [0, 2**32 - 1],
    FieldDescriptor.CPPTYPE_UINT64: [2**64 - 1, 1 << 40],
    FieldDescriptor.CPPTYPE_DOUBLE: [math.nan, math.inf, -1e308],
    FieldDescriptor.CPPTYPE_FLOAT: [math.nan, -math.inf, 3e38],
    FieldDescriptor.CPPTYPE_BOOL: [True, False],
    FieldDescriptor.CPPTYPE_ENUM: [0, 999, -1],
    FieldDescriptor.CPPTYPE_STRING: _STRINGS,
}
_BAD_BYTES = [b"", b"\xff" * 64, b"{" * 2000, b"\0" * 3]

Step = tuple[str, Any]  # (field name, index or map key or None)


def _bad_values(field: Any) -> list[Any]:
    if field.type == FieldDescriptor.TYPE_BYTES:
        return _BAD_BYTES
    return _BAD[field.cpp_type]


def _is_map(field: Any) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _slots(message: Message, path: tuple[Step, ...] = ()) -> Iterator[tuple[Step, ...]]:
    """Every place in ``message`` a wrong value can go: each set field, its first elements,
    its map entries."""
    for field, value in message.ListFields():
        whole = (*path, (field.name, None))
        yield whole
        if _is_map(field):
            for key in list(value)[:2]:
                entry = value[key]
                if isinstance(entry, Message):
                    yield from _slots(entry, (*path, (field.name, key)))
                else:
                    yield (*path, (field.name, key))
        elif field.is_repeated:
            if field.message_type is not None:
                for index in range(min(2, len(value))):
                    yield from _slots(value[index], (*path, (field.name, index)))
            else:
                yield (*path, (field.name, 0))
        elif field.message_type is not None:
            yield from _slots(value, whole)


def _mutations(seed: Message, path: tuple[Step, ...]) -> Iterator[tuple[str, Message]]:
    """Copies of ``seed`` with one wrong value at ``path``."""
    *parents, (name, key) = path
    where = ".".join(f"{n}[{k}]" if k is not None else n for n, k in path)

    def fresh() -> tuple[Message, Message]:
        copy = type(seed)()
        copy.CopyFrom(seed)
        holder = copy
        for parent, index in parents:
            container = getattr(holder, parent)
            holder = container if index is None else container[index]
        return copy, holder

    copy, holder = fresh()
    field: Any = holder.DESCRIPTOR.fields_by_name[name]
    repeated = field.is_repeated
    if key is None and (repeated or field.message_type is not None):
        copy, holder = fresh()
        holder.ClearField(name)
        yield f"{where} cleared", copy
        if repeated and field.message_type is None:
            copy, holder = fresh()
            getattr(holder, name).extend([_bad_values(field)[0]] * 40)
            yield f"{where} x40", copy
        elif repeated and not _is_map(field):
            copy, holder = fresh()
            items = getattr(holder, name)
            items.add().CopyFrom(items[0]) if len(items) else items.add()
            yield f"{where} duplicated", copy
        return
    if _is_map(field):
        field = field.message_type.fields_by_name["value"]
    for value in _bad_values(field):
        copy, holder = fresh()
        container = getattr(holder, name) if key is not None else None
        try:
            if container is None:
                setattr(holder, name, value)
            else:
                container[key] = value
        except (ValueError, TypeError):
            continue  # a value this field's type cannot hold at all
        yield f"{where}={str(value)[:12]!s}", copy


def field_cases() -> list[GrpcCase]:
    """Every method's seed with a wrong value in each of its fields, deterministic."""
    cases = []
    for method, seed in SEEDS:
        for path in _slots(seed):
            for what, message in _mutations(seed, path):
                cases.append(GrpcCase(f"{method.rsplit('/', 1)[1]} {what}", method,
                                      message.SerializeToString()))  # fmt: skip
    return cases


def _shaped_predicts() -> Iterator[GrpcCase]:
    """The shapes the issue measured: one value broadcast to a huge shape, >32 dimensions."""
    for shape in ([1 << 40, 64], [300_000, 64], [10**9, 10**9], [1] * 33, [1] * 70, [-1, 64],
                  [0, 1 << 62], [2**62, 2**62, 2**62]):  # fmt: skip
        yield GrpcCase(f"Predict shape {shape[:3]}", TFS + "Predict",
                       _predict(shape, [1.0]).SerializeToString())  # fmt: skip
        request = _model_infer(raw=True)
        del request.inputs[0].shape[:]
        request.inputs[0].shape.extend(shape)
        yield GrpcCase(f"ModelInfer raw shape {shape[:3]}", OIP + "ModelInfer",
                       request.SerializeToString())  # fmt: skip


def grpc_cases(seed: int, count: int) -> list[GrpcCase]:
    """About ``count`` cases: every field case once, random and mutated bytes for the rest,
    spread over every method (health's Watch and reflection's stream included)."""
    rng = random.Random(seed)
    cases = field_cases() + list(_shaped_predicts())
    streams: list[tuple[str, Kind]] = [(HEALTH + "Watch", "server_stream"), (REFLECTION, "bidi")]
    unary: Kind = "unary"
    methods = [(m, unary, s.SerializeToString()) for m, s in SEEDS]
    methods += [(HEALTH + "Check", unary, b"")] + [(m, k, b"") for m, k in streams]
    while len(cases) < count:
        method, kind, body = rng.choice(methods)
        choice = rng.random()
        if choice < 0.35 or not body:
            body, what = rng.randbytes(rng.randrange(1, 200)), "random bytes"
        else:
            body, what = _mutated(rng, body), "mutated"
        cases.append(GrpcCase(f"{method.rsplit('/', 1)[1]} {what}", method, body, kind))
    cases = [_with_metadata(rng, case) for case in cases]
    rng.shuffle(cases)
    return cases


def _with_metadata(rng: random.Random, case: GrpcCase) -> GrpcCase:
    choice = rng.random()
    if choice < 0.8:
        metadata = (("x-gateway-variant", rng.choice(PINS)),)
    elif choice < 0.9:
        metadata = (("x-gateway-variant", rng.choice(["nope", "v" * 10_000, ""])),)
    else:
        metadata = (("x-user-id", "u" * rng.choice([1, 10_000])),)
    return GrpcCase(case.what, case.method, case.body, case.kind, metadata)


def call(channel: grpc.Channel, case: GrpcCase, timeout: float) -> tuple[grpc.StatusCode, str]:
    """Send ``case``; its status code and details (OK and "" if it succeeded)."""
    raw: dict[str, Any] = {"request_serializer": None, "response_deserializer": None}
    try:
        if case.kind == "unary":
            channel.unary_unary(case.method, **raw)(case.body, timeout=timeout,
                                                    metadata=case.metadata)  # fmt: skip
        elif case.kind == "server_stream":
            stream = channel.unary_stream(case.method, **raw)(
                case.body, timeout=timeout, metadata=case.metadata
            )
            next(stream)  # a watch answers with the current status and then waits for changes
            stream.cancel()
        else:
            for _ in channel.stream_stream(case.method, **raw)(
                iter([case.body]), timeout=timeout, metadata=case.metadata
            ):
                pass
    except grpc.RpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def garbage_streams(seed: int, count: int) -> list[tuple[str, bytes]]:
    """Bytes for the gRPC port that are not (valid) HTTP/2: noise, HTTP/1.1, a preface then
    noise, frames with absurd lengths."""
    rng = random.Random(seed)
    settings = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    fixed = [
        ("http/1.1", b"POST /inference.GRPCInferenceService/ModelInfer HTTP/1.1\r\n\r\n"),
        ("preface only", PREFACE),
        ("huge frame", PREFACE + settings + b"\xff\xff\xff\x00\x00\x00\x00\x00\x01"),
        ("headers on stream 0", PREFACE + settings + b"\x00\x00\x05\x01\x04\x00\x00\x00\x00abcde"),
        ("tls hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64)),
    ]
    noise = [(f"noise {n}", rng.randbytes(rng.randrange(1, 4096))) for n in range(count // 2)]
    after = [(f"preface+noise {n}", PREFACE + settings + rng.randbytes(rng.randrange(1, 512)))
             for n in range(count - count // 2 - len(fixed))]  # fmt: skip
    return fixed + noise + after


def send_garbage(port: int, data: bytes, timeout: float) -> bool:
    """Write ``data`` to the gRPC port; True when the server answers or closes within
    ``timeout`` (its SETTINGS or GOAWAY, a reset), False when it just waits."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)  # nothing more comes: the server must decide now
            sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False
    return True
