"""The gRPC server: TF Serving's two services and grpc.health.v1, on a fixed thread pool."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from deploy.local.tfserving_standin.core import ServerCore
from deploy.local.tfserving_standin.grpc_services import ModelService, PredictionService
from deploy.local.tfserving_standin.limits import MAX_MESSAGE_BYTES
from deploy.local.tfserving_standin.metrics import Metrics

GRPC_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]
_HEALTH_SERVICES = ("", "tensorflow.serving.PredictionService", "tensorflow.serving.ModelService")


def start_grpc(
    core: ServerCore, metrics: Metrics, host: str, port: int, threads: int
) -> tuple[grpc.Server, health.HealthServicer, int]:
    """Listen on host:port (port 0: any free one) and start; the bound port is returned."""
    server = grpc.server(
        ThreadPoolExecutor(max_workers=threads, thread_name_prefix="grpc"), options=GRPC_OPTIONS
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(core, metrics), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(core), server)
    health_servicer = health.HealthServicer()
    for service in _HEALTH_SERVICES:
        health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    bound = server.add_insecure_port(address)
    if not bound:
        raise OSError(f"cannot listen for gRPC on {address}")
    server.start()
    return server, health_servicer, bound
