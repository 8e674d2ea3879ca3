"""Small Open Inference Protocol backends of the tests' own, REST and gRPC, that answer one
model (``m``, version 1: two FP32 outputs) and record the headers / metadata of every call. The
REST one also has ``flaky``, ready but answering every inference with 503."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc

from gateway.wire import oip_pb2 as oip

VALUES = [0.25, 0.75]
OUTPUT = {"name": "out", "datatype": "FP32", "shape": [1, 2], "data": VALUES}
METADATA = {
    "name": "m",
    "versions": ["1"],
    "platform": "recording",
    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
    "outputs": [{"name": "out", "datatype": "FP32", "shape": [-1, 2]}],
}


class Recorded:
    """Headers (REST) or metadata (gRPC) of each inference call, lower-case keys."""

    def __init__(self) -> None:
        self.calls: list[dict[str, str]] = []
        self._lock = threading.Lock()

    def add(self, headers: dict[str, str]) -> None:
        with self._lock:
            self.calls.append(headers)

    def last(self) -> dict[str, str]:
        with self._lock:
            return self.calls[-1]


def _handler(recorded: Recorded) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _reply(self, status: int, doc: dict[str, Any]) -> None:
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path in ("/v2/models/m/versions/1/ready", "/v2/models/flaky/versions/1/ready"):
                self._reply(200, {"ready": True})
            elif self.path == "/v2/models/m/versions/1":
                self._reply(200, METADATA)
            else:
                self._reply(404, {"error": "not found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            self.rfile.read(length)
            if self.path == "/v2/models/flaky/versions/1/infer":
                self._unavailable()
                return
            if self.path != "/v2/models/m/versions/1/infer":
                self._reply(404, {"error": "not found"})
                return
            recorded.add({k.lower(): v for k, v in self.headers.items()})
            self._reply(200, {"model_name": "m", "model_version": "1", "outputs": [OUTPUT]})

        def _unavailable(self) -> None:
            recorded.add({k.lower(): v for k, v in self.headers.items()})
            self._reply(503, {"error": "flaky is overloaded"})

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextlib.contextmanager
def rest_backend() -> Iterator[tuple[Recorded, int]]:
    recorded = Recorded()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(recorded))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorded, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _grpc_handlers(recorded: Recorded) -> grpc.GenericRpcHandler:
    def ready(body: bytes, context: grpc.ServicerContext) -> bytes:
        return oip.ModelReadyResponse(ready=True).SerializeToString()

    def infer(body: bytes, context: grpc.ServicerContext) -> bytes:
        recorded.add({key: str(value) for key, value in context.invocation_metadata()})
        reply = oip.ModelInferResponse(model_name="m", model_version="1")
        out = reply.outputs.add(name="out", datatype="FP32", shape=[1, 2])
        out.contents.fp32_contents.extend(VALUES)
        return reply.SerializeToString()

    def metadata(body: bytes, context: grpc.ServicerContext) -> bytes:
        reply = oip.ModelMetadataResponse(name="m", versions=["1"], platform="recording")
        reply.inputs.add(name="x", datatype="FP32", shape=[-1, 2])
        reply.outputs.add(name="out", datatype="FP32", shape=[-1, 2])
        return reply.SerializeToString()

    methods = {"ModelReady": ready, "ModelInfer": infer, "ModelMetadata": metadata}
    return grpc.method_handlers_generic_handler(
        "inference.GRPCInferenceService",
        {name: grpc.unary_unary_rpc_method_handler(f) for name, f in methods.items()},
    )


@contextlib.contextmanager
def grpc_backend() -> Iterator[tuple[Recorded, int]]:
    recorded = Recorded()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((_grpc_handlers(recorded),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield recorded, port
    finally:
        server.stop(0)
