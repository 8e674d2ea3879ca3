"""OIP ``ModelInfer`` calls on the gateway's gRPC port, each timed with the status it ended with."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import grpc
from tritonclient.grpc import service_pb2 as oip

from model_store.digits import INPUT_NAME

MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"


@dataclass(frozen=True)
class Call:
    code: str
    """The gRPC status code's name (``OK``, ``DEADLINE_EXCEEDED``, ...)."""
    latency_s: float


def infer_request(model: str) -> Any:
    request = oip.ModelInferRequest(model_name=model)
    request.inputs.add(name=INPUT_NAME, datatype="FP32", shape=[1, 64])
    request.raw_input_contents.append(b"\0" * 256)
    return request


async def model_infer(channel: grpc.aio.Channel, request: Any, timeout_s: float) -> Call:
    call = channel.unary_unary(
        MODEL_INFER,
        request_serializer=oip.ModelInferRequest.SerializeToString,
        response_deserializer=oip.ModelInferResponse.FromString,
    )
    started = time.monotonic()
    try:
        await call(request, timeout=timeout_s)
        code = grpc.StatusCode.OK
    except grpc.aio.AioRpcError as error:
        code = error.code()
    return Call(code.name, time.monotonic() - started)
