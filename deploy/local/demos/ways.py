"""The three ways in the demo's clients use, each as unchanged clients of that protocol speak it:
Open Inference Protocol REST, TF Serving gRPC ``Predict``, and TorchServe's REST inference API.

A way sends a batch of digits and returns the probabilities, the variant that answered
(``x-gateway-variant``) and the version the answer names (None where the protocol names
none); anything else raises ``RequestFailed`` with what went wrong.
"""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from typing import Protocol

import grpc

from gateway.wire import tensorflow_serving_pb2 as tfs
from loadtests.endpoints import MODEL, VARIANT_HEADER
from loadtests.grpc_messages import TFS_PREDICT_PATH, tfs_answer, tfs_predict_request
from loadtests.payloads import oip_answer, oip_json_body
from model_store.digits import FloatArray

TIMEOUT_S = 10.0
# What reading a malformed answer raises.
UNREADABLE = (ValueError, KeyError, TypeError, IndexError)


class RequestFailed(Exception):
    """The request got no answer to judge: an error status, a transport error, garbage."""

    def __init__(self, message: str, variant: str | None = None) -> None:
        super().__init__(message)
        self.variant = variant


@dataclass(frozen=True)
class Answer:
    probabilities: FloatArray
    variant: str | None
    version: str | None


class Way(Protocol):
    name: str

    def send(self, rows: FloatArray, headers: dict[str, str]) -> Answer: ...

    def close(self) -> None: ...


class _Rest:
    """One keep-alive connection, reopened after a transport error, as a real client does."""

    name = ""
    path = ""

    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._conn: http.client.HTTPConnection | None = None

    def send(self, rows: FloatArray, headers: dict[str, str]) -> Answer:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self._host, self._port, timeout=TIMEOUT_S)
        try:
            self._conn.request(
                "POST", self.path, oip_json_body(rows),
                {"content-type": "application/json", **headers},
            )  # fmt: skip
            response = self._conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as error:
            self.close()
            raise RequestFailed(f"{type(error).__name__}: {error}") from None
        variant = response.getheader(VARIANT_HEADER)
        if response.status != 200:
            text = body[:200].decode(errors="replace")
            raise RequestFailed(f"HTTP {response.status}: {text}", variant)
        try:
            probabilities, version = oip_answer(body)
        except UNREADABLE as error:
            raise RequestFailed(f"unreadable answer: {error!r}", variant) from None
        return Answer(probabilities, variant, version)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class OipRest(_Rest):
    """``POST /v2/models/digits/infer`` with JSON tensors (tritonclient.http, KServe's SDK)."""

    name = "OIP REST"
    path = f"/v2/models/{MODEL}/infer"


class TorchServeRest(_Rest):
    """``POST /predictions/digits`` with the OIP body TorchServe's kservev2 handler reads."""

    name = "TorchServe REST"
    path = f"/predictions/{MODEL}"


class TfServingGrpc:
    """``tensorflow.serving.PredictionService/Predict`` with ``tensor_content``."""

    name = "TF Serving gRPC"

    def __init__(self, target: str) -> None:
        self._channel = grpc.insecure_channel(target)
        self._predict = self._channel.unary_unary(
            TFS_PREDICT_PATH,
            request_serializer=tfs.PredictRequest.SerializeToString,
            response_deserializer=tfs.PredictResponse.FromString,
        )

    def send(self, rows: FloatArray, headers: dict[str, str]) -> Answer:
        try:
            response, call = self._predict.with_call(
                tfs_predict_request(rows, ""),
                metadata=tuple(headers.items()),
                timeout=TIMEOUT_S,
            )
        except grpc.RpcError as error:
            code = error.code().name if isinstance(error, grpc.Call) else "?"
            details = error.details() if isinstance(error, grpc.Call) else str(error)
            raise RequestFailed(f"{code}: {details}") from None
        variant = dict(call.initial_metadata() or ()).get(VARIANT_HEADER)
        try:
            probabilities, version = tfs_answer(response)
        except UNREADABLE as error:
            raise RequestFailed(f"unreadable answer: {error!r}", str(variant)) from None
        return Answer(probabilities, str(variant) if variant else None, version)

    def close(self) -> None:
        self._channel.close()


def all_ways(host: str, http_port: int, grpc_port: int) -> list[Way]:
    """One client of each protocol, pointed at the gateway."""
    return [
        OipRest(host, http_port),
        TfServingGrpc(f"{host}:{grpc_port}"),
        TorchServeRest(host, http_port),
    ]
