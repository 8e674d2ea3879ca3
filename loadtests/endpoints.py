"""The gateway's ways in that the load test drives, named once for the users and the runner.

Locust keys its statistics by request type and name; every user class reports under its
endpoint's ``(request_type, name)`` whatever version it asks for, so the SLO file can name an
endpoint by its short ``key``. This module imports neither Locust nor gevent: the runner uses it.
"""

from __future__ import annotations

from dataclasses import dataclass

MODEL = "digits"
STICKY_HEADER = "x-user-id"
VARIANT_HEADER = "x-gateway-variant"


@dataclass(frozen=True)
class Endpoint:
    key: str  # what the SLO file and the runner's --endpoints call it
    request_type: str  # Locust's "Type" column
    name: str  # Locust's "Name" column
    user_class: str  # the Locust user class that drives it


OIP_REST_JSON = Endpoint(
    "oip_rest_json", "POST", f"/v2/models/{MODEL}/infer (json)", "OipRestJsonUser"
)
OIP_REST_BINARY = Endpoint(
    "oip_rest_binary", "POST", f"/v2/models/{MODEL}/infer (binary)", "OipRestBinaryUser"
)
OIP_GRPC = Endpoint("oip_grpc", "grpc", "inference.GRPCInferenceService/ModelInfer", "OipGrpcUser")
TFS_REST = Endpoint("tfs_rest", "POST", f"/v1/models/{MODEL}:predict", "TFServingRestUser")
TFS_GRPC = Endpoint(
    "tfs_grpc", "grpc", "tensorflow.serving.PredictionService/Predict", "TFServingGrpcUser"
)
TORCHSERVE_REST = Endpoint("torchserve_rest", "POST", f"/predictions/{MODEL}", "TorchServeRestUser")

ENDPOINTS: dict[str, Endpoint] = {
    endpoint.key: endpoint
    for endpoint in (OIP_REST_JSON, OIP_REST_BINARY, OIP_GRPC, TFS_REST, TFS_GRPC, TORCHSERVE_REST)
}
