"""Every backend client against servers that garble their replies, over real sockets.

A garbled reply is the backend's fault: 502 (BackendError), 503 (BackendUnavailable) when the
connection breaks, 504 (BackendTimeout) when nothing comes; never a 500 and never the client's
400. ``ready()`` never raises: False for a failure, None for no answer in time. ``CLIENTS`` has
one line per backend client: a new one is one more line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
import pytest
import uvloop

from gateway.backends import (
    Backend,
    BackendModel,
    create_backend,
    oip_grpc,
    oip_rest,
    tfserving_grpc,
    tfserving_rest,
    torchserve_management,
)
from gateway.config import OipBackendConfig, TFServingBackendConfig, TorchServeBackendConfig
from gateway.errors import (
    BackendDroppedReply,
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    GatewayError,
)
from gateway.inference import InferRequest, Tensor
from gateway.metadata import MetadataCache
from gateway.wire import oip_pb2 as oip
from gateway.wire import tensorflow_pb2 as tf
from gateway.wire import tensorflow_serving_pb2 as tfs
from tests.backends.hostile import HostileServer, Peer

LIMIT = 1024 * 1024
TARGET = BackendModel("m", "1")
CALL_S = 0.5
"""Every client's call timeout, and (``short_probes``) its probe timeout: a silent server costs
each client three of them."""
HANG_S = 4.0


@dataclass(frozen=True)
class Fakes:
    http: str
    """Base URL of the garbling HTTP server."""
    grpc: str
    """host:port of the garbling gRPC server."""


@dataclass(frozen=True)
class Client:
    name: str
    config: Callable[[Fakes], Any]
    ready_from_status: bool = False
    """Readiness is the HTTP status alone (OIP): a 200 with any body is ready."""


CLIENTS = [
    Client(
        "tfserving-grpc",
        lambda f: TFServingBackendConfig(
            kind="tfserving", grpc=f.grpc, rest=None, protocol="grpc", timeout_s=CALL_S
        ),
    ),
    Client(
        "tfserving-rest",
        lambda f: TFServingBackendConfig(
            kind="tfserving", grpc=None, rest=f.http, protocol="rest", timeout_s=CALL_S
        ),
    ),
    Client(
        "torchserve-rest",
        lambda f: TorchServeBackendConfig(
            kind="torchserve", inference=f.http, management=f.http, grpc=None, timeout_s=CALL_S
        ),
    ),
    Client(
        "torchserve-grpc",
        lambda f: TorchServeBackendConfig(
            kind="torchserve", management=f.http, grpc=f.grpc, protocol="grpc", timeout_s=CALL_S
        ),
    ),
    Client(
        "oip-rest",
        lambda f: OipBackendConfig(kind="oip", url=f.http, timeout_s=CALL_S),
        ready_from_status=True,
    ),
    Client(
        "oip-grpc",
        lambda f: OipBackendConfig(kind="oip", grpc=f.grpc, protocol="grpc", timeout_s=CALL_S),
    ),
]


def _wrong_tensor() -> bytes:
    """A PredictResponse whose tensor content does not fit its shape and dtype."""
    reply = tfs.PredictResponse()
    tensor = reply.outputs["y"]
    tensor.dtype = tf.DT_FLOAT
    tensor.tensor_shape.dim.add().size = 2
    tensor.tensor_shape.dim.add().size = 2
    tensor.tensor_content = b"abc"
    return reply.SerializeToString()


def _wrong_oip_tensor(datatype: str = "FP32", dim: int = 2) -> bytes:
    """A ModelInferResponse whose raw output does not fit its shape (or its datatype is not a
    datatype). Read as a ModelMetadataResponse, the same bytes name an output "y" of that
    datatype and shape [dim, 2]."""
    output = oip.ModelInferResponse.InferOutputTensor(name="y", datatype=datatype, shape=[dim, 2])
    reply = oip.ModelInferResponse(outputs=[output], raw_output_contents=[b"abc"])
    return reply.SerializeToString()


def _oversized() -> bytes:
    return _wrong_tensor() + b"\x22" + _varint(2 * LIMIT) + b"\x00" * (2 * LIMIT)


def _varint(value: int) -> bytes:
    out = b""
    while value > 0x7F:
        out += bytes([value & 0x7F | 0x80])
        value >>= 7
    return out + bytes([value])


GrpcAnswer = Callable[[grpc.ServicerContext], bytes]


@dataclass(frozen=True)
class Mode:
    """One way to garble: what the HTTP server and the gRPC server do, and what must follow."""

    name: str
    http: Callable[[Peer], None]
    grpc: GrpcAnswer
    error: type[GatewayError]
    ready: bool | None = False
    http_ok: bool = False
    """The HTTP exchange itself is sound (a complete 200): only the body is garbage."""
    oip_grpc: GrpcAnswer | None = None
    """What an ``inference.GRPCInferenceService`` method answers, when ``grpc``'s TF Serving
    bytes would be a well-formed (if meaningless) OIP message."""


def answer(body: bytes, status: str = "200 OK") -> Callable[[Peer], None]:
    return lambda peer: peer.reply(body, status, content_type="application/json")


def raw(data: bytes) -> Callable[[Peer], None]:
    def send(peer: Peer) -> None:
        peer.send(data)
        peer.sock.close()

    return send


def grpc_bytes(data: bytes) -> Callable[[grpc.ServicerContext], bytes]:
    return lambda context: data


def grpc_abort(code: grpc.StatusCode) -> Callable[[grpc.ServicerContext], bytes]:
    def abort(context: grpc.ServicerContext) -> bytes:
        context.abort(code, "garbled on purpose")
        raise AssertionError("abort returns by raising")

    return abort


def hang_http(peer: Peer) -> None:
    time.sleep(HANG_S)


def hang_grpc(context: grpc.ServicerContext) -> bytes:
    time.sleep(HANG_S)
    return b""


VALID_OUTPUT = b'{"name": "y", "datatype": "FP32", "shape": [1], "data": [1.0]}'
MODES = [
    Mode(
        "not JSON, not protobuf",
        answer(b"\xff\xfe\x00 garbage"),
        grpc_bytes(b"\xff\xff\xff\xff\x0f"),
        BackendError,
        http_ok=True,
    ),
    Mode(
        "truncated",
        answer(b'{"outputs": [{"name": "y", "datatype": "FP32", "shape": [1], "data": [1'),
        grpc_bytes(_wrong_tensor()[:-2]),
        BackendError,
        http_ok=True,
    ),
    Mode(
        "a bad id, a tensor that does not fit",
        answer(b'{"id": 5, "inputs": 7, "outputs": [' + VALID_OUTPUT + b"]}"),
        grpc_bytes(_wrong_tensor()),
        BackendError,
        http_ok=True,
        oip_grpc=grpc_bytes(_wrong_oip_tensor(dim=-7)),
    ),
    Mode(
        "wrong JSON types",
        answer(
            b'{"inputs": [{"name": "x"}],'
            b' "outputs": [{"name": "y", "datatype": ["FP32"], "shape": {}, "data": 1}]}'
        ),
        grpc_bytes(_wrong_tensor()),
        BackendError,
        http_ok=True,
        oip_grpc=grpc_bytes(_wrong_oip_tensor("FP99")),
    ),
    Mode(
        "not an object",
        answer(b'[1, "two", {"three": [3]}]'),
        grpc_bytes(b"\x0a\x05\x0a\x03\xff\xfe\xfd"),  # a map key that is not UTF-8
        BackendError,
        http_ok=True,
    ),
    Mode(
        "invalid UTF-8 in a string",
        answer(b'{"outputs": [{"name": "\xc3\x28", "datatype": "FP32", "data": [1]}]}'),
        grpc_bytes(b"\x0a\x05\x0a\x03\xc3\x28\x00"),
        BackendError,
        http_ok=True,
    ),
    Mode(
        "nested too deep",
        answer(b"[" * 100_000),
        grpc_bytes(b"\x0a" * 100_000),
        BackendError,
        http_ok=True,
    ),
    Mode(
        "server error",
        answer(b"\xff<html>", "500 Internal Server Error"),
        grpc_abort(grpc.StatusCode.INTERNAL),
        BackendError,
    ),
    Mode(
        "not HTTP",
        raw(b"SSH-2.0-OpenSSH\r\n\r\n"),
        grpc_abort(grpc.StatusCode.UNKNOWN),
        BackendError,
    ),
    Mode(
        "switching protocols",
        raw(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: h2c\r\nconnection: upgrade\r\n\r\n"),
        grpc_abort(grpc.StatusCode.DATA_LOSS),
        BackendError,
    ),
    Mode("too large", answer(b"x" * (2 * LIMIT)), grpc_bytes(_oversized()), BackendError),
    Mode(
        "cut mid-reply",
        raw(b'HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n{"outputs": ['),
        grpc_abort(grpc.StatusCode.UNAVAILABLE),
        BackendUnavailable,
    ),
    Mode("silent", hang_http, hang_grpc, BackendTimeout, ready=None),
]


class Garbler:
    """Both fake servers, answering every request the way the current mode says."""

    def __init__(self) -> None:
        self.mode = MODES[0]
        self.http = HostileServer(self._http)
        self.grpc = grpc.server(
            futures.ThreadPoolExecutor(max_workers=16),
            handlers=[_AnyMethod(self)],
            options=[("grpc.max_send_message_length", 8 * LIMIT)],
        )
        self.grpc_port = self.grpc.add_insecure_port("127.0.0.1:0")

    def _http(self, peer: Peer) -> None:
        while peer.request() is not None:
            self.mode.http(peer)

    def fakes(self) -> Fakes:
        return Fakes(self.http.url, f"127.0.0.1:{self.grpc_port}")


class _AnyMethod:
    """A generic handler (duck-typed: grpc only calls ``service``) for every method."""

    def __init__(self, garbler: Garbler) -> None:
        self._garbler = garbler

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        oip_method = handler_call_details.method.startswith("/inference.GRPCInferenceService/")

        def answer(request: bytes, context: grpc.ServicerContext) -> bytes:
            mode = self._garbler.mode
            reply = mode.oip_grpc if oip_method and mode.oip_grpc is not None else mode.grpc
            return reply(context)

        return grpc.unary_unary_rpc_method_handler(answer)


@pytest.fixture(autouse=True)
def short_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe bound each client module imported (2 s) cut to ``CALL_S``."""
    for module in (oip_grpc, oip_rest, tfserving_grpc, tfserving_rest, torchserve_management):
        assert module.PROBE_TIMEOUT_S > CALL_S
        monkeypatch.setattr(module, "PROBE_TIMEOUT_S", CALL_S)


@pytest.fixture(scope="module")
def garbler():
    garbler = Garbler()
    garbler.grpc.start()
    with garbler.http:
        yield garbler
    garbler.grpc.stop(0)


def request() -> InferRequest:
    inputs = [Tensor("x", "FP32", np.ones((1, 4), dtype=np.float32))]
    return InferRequest("m", inputs=inputs)


async def outcomes(backend: Backend) -> dict[str, Any]:
    """What each call did: the class of the error it raised, or what ready() returned."""
    found: dict[str, Any] = {}
    await backend.start()
    try:
        try:
            response = await backend.infer(TARGET, request(), backend.timeout_s)
            await response.output_tensors()
            found["infer"] = None
        except Exception as error:
            found["infer"] = type(error)
        try:
            await backend.metadata(TARGET)
            found["metadata"] = None
        except Exception as error:
            found["metadata"] = type(error)
        found["ready"] = await backend.ready(TARGET)
    finally:
        await backend.close()
    return found


@pytest.mark.parametrize("mode", MODES, ids=[mode.name for mode in MODES])
@pytest.mark.parametrize("client", CLIENTS, ids=[client.name for client in CLIENTS])
def test_garbled_replies_are_the_backends_fault(garbler, client, mode):
    garbler.mode = mode
    backend = create_backend(client.name, client.config(garbler.fakes()), LIMIT, MetadataCache())
    found = uvloop.run(outcomes(backend))
    ready = True if client.ready_from_status and mode.http_ok else mode.ready
    if mode.name == "cut mid-reply":  # over HTTP, the subclass that says "do not retry"
        for call in ("infer", "metadata"):
            if found[call] is BackendDroppedReply:
                found[call] = BackendUnavailable
    assert found == {"infer": mode.error, "metadata": mode.error, "ready": ready}


@pytest.mark.parametrize("client", CLIENTS, ids=[client.name for client in CLIENTS])
def test_close_before_start(client):
    fakes = Fakes("http://127.0.0.1:9", "127.0.0.1:9")
    backend = create_backend(client.name, client.config(fakes), LIMIT, MetadataCache())
    uvloop.run(backend.close())


@pytest.mark.parametrize("client", ["torchserve-rest", "oip-rest"])
def test_a_bad_id_in_a_reply_is_not_the_clients_fault(garbler, client):
    garbler.mode = Mode("bad id", answer(b'{"id": 5, "outputs": [' + VALID_OUTPUT + b"]}"),
                        grpc_bytes(b""), BackendError)  # fmt: skip
    unreadable = r"sent an unreadable (reply|response): .*id must be a string"
    with pytest.raises(BackendError, match=unreadable):
        uvloop.run(infer_and_decode(client_backend(client, garbler)))


def client_backend(name: str, garbler: Garbler) -> Backend:
    (config,) = [c.config(garbler.fakes()) for c in CLIENTS if c.name == name]
    return create_backend(name, config, LIMIT, MetadataCache())


async def infer_and_decode(backend: Backend, check_metadata: bool = False) -> None:
    await backend.start()
    try:
        if check_metadata:
            assert (await backend.metadata(TARGET)).outputs[0].name == "y"
        response = await backend.infer(TARGET, request(), 1.0)
        await response.output_tensors()
    finally:
        await backend.close()


TF_METADATA = (
    b'{"metadata": {"signature_def": {"signature_def": {"serving_default": {'
    b'"inputs": {"x": {"dtype": "DT_FLOAT", "tensor_shape": {"dim": [{"size": "-1"}]}}},'
    b'"outputs": {"y": {"dtype": "DT_FLOAT", "tensor_shape": {"dim": [{"size": "-1"}]}}}}}}}}'
)


@pytest.mark.parametrize(
    "body",
    [
        b'{"predictions": [{"y": 1}, 3]}',
        b'{"predictions": [[1, 2], [3]]}',
        b'{"outputs": {"y": "not numbers"}}',
        b'{"outputs": [[1e999999]]}',
        b'{"predictions": "\xc3\x28"}',
    ],
)
def test_tf_rest_predict_reply_garbled_beside_sound_metadata(garbler, body):
    """The :predict reply is decoded with the metadata: garbage in it is still the backend's."""

    def script(peer: Peer) -> None:
        path = peer.server.requests[-1].path
        answer(TF_METADATA if path.endswith("/metadata") else body)(peer)

    garbler.mode = Mode("predict only", script, grpc_bytes(b""), BackendError)
    backend = client_backend("tfserving-rest", garbler)
    with pytest.raises(BackendError, match=r"backend 'tfserving-rest'"):
        uvloop.run(infer_and_decode(backend, check_metadata=True))
