"""The gRPC users: OIP ``ModelInfer`` and TF Serving ``Predict``, on the gateway's gRPC port.

Locust runs every user in a gevent greenlet, and a plain gRPC call blocks the whole process:
``init_gevent()`` (below, at import, before any channel exists) makes grpcio's core wait
through gevent, so calls from many users overlap. Each user has its own channel (one HTTP/2
connection) and reports every call itself through Locust's ``request`` event: request type
``grpc``, the method as the name, the call's time, the answer's size, and a failure for a
non-OK status or an answer that ``Traffic.check`` rejects (every call is counted in the variant
book, under the variant that answered it).
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import grpc
from grpc.experimental import gevent as grpc_gevent
from locust import User, task
from locust.env import Environment
from locust.exception import CatchResponseError

from loadtests.endpoints import VARIANT_HEADER
from loadtests.grpc_messages import OIP_GRPC_WAY, TFS_GRPC_WAY, GrpcWay
from loadtests.traffic import Answer
from loadtests.users import UNREADABLE, new_traffic

grpc_gevent.init_gevent()


class DigitsGrpcUser(User):
    abstract = True
    way: ClassVar[GrpcWay]

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.traffic = new_traffic(environment)
        self._channel: Any = None
        self._method: Any = None

    def wait_time(self) -> float:
        return self.traffic.pause()

    def on_start(self) -> None:
        self._channel = grpc.insecure_channel(self.traffic.settings.grpc_target)
        self._method = self._channel.unary_unary(
            self.way.method,
            request_serializer=lambda message: message.SerializeToString(),
            response_deserializer=self.way.response_type.FromString,
        )

    def on_stop(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    @task
    def infer(self) -> None:
        request = self.traffic.next_request()
        message = self.way.encode(request.sample.rows, self.traffic.settings.model_version)
        start_time = time.time()
        started = time.perf_counter()
        response_time = 0.0
        length = 0
        variant: str | None = None
        try:
            response, call = self._method.with_call(
                message,
                metadata=tuple(request.headers.items()),
                timeout=self.traffic.settings.timeout_s,
            )
            response_time = (time.perf_counter() - started) * 1000
            length = response.ByteSize()
            variant = dict(call.initial_metadata() or ()).get(VARIANT_HEADER)
            probabilities, version = self.way.decode(response)
            answer = Answer(probabilities, variant, version, response_time)
            problem = self.traffic.check(request, answer)
        except grpc.RpcError as error:
            response_time = (time.perf_counter() - started) * 1000
            problem = f"{error.code().name}: {error.details()}"
            self.traffic.failed(_variant_of(error), response_time)
        except UNREADABLE as error:
            problem = f"unreadable answer: {error!r}"
            self.traffic.failed(variant, response_time)
        self.environment.events.request.fire(
            request_type=self.way.endpoint.request_type,
            name=self.way.endpoint.name,
            start_time=start_time,
            response_time=response_time,
            response_length=length,
            response=None,
            context=self.context(),
            exception=CatchResponseError(problem) if problem is not None else None,
        )


def _variant_of(error: grpc.RpcError) -> str | None:
    """The variant named in a failed call's initial metadata, if it got that far."""
    initial = getattr(error, "initial_metadata", None)
    metadata = initial() if callable(initial) else None
    return dict(metadata or ()).get(VARIANT_HEADER)


class OipGrpcUser(DigitsGrpcUser):
    """``inference.GRPCInferenceService/ModelInfer`` with raw FP32 contents."""

    way = OIP_GRPC_WAY


class TFServingGrpcUser(DigitsGrpcUser):
    """``tensorflow.serving.PredictionService/Predict`` with ``tensor_content``."""

    way = TFS_GRPC_WAY
