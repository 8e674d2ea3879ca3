"""Asking each runtime straight (not through the gateway) what it serves and what it answers."""

from __future__ import annotations

import json
from typing import Any

import grpc
import numpy as np

from deploy.local.stack import StackPorts
from gateway.backends.torchserve_keys import INFERENCE, MANAGEMENT
from gateway.wire import tensorflow_pb2
from gateway.wire import tensorflow_serving_pb2 as tfs
from tests.support.http import call, infer_body
from tests.support.stack import torchserve_auth as auth


def torchserve_versions(ports: StackPorts) -> list[str]:
    url = f"http://127.0.0.1:{ports.torchserve.management}/models/digits/all"
    reply = call(url, headers=auth(ports, MANAGEMENT))
    assert reply.status == 200, reply.body
    return sorted(entry["modelVersion"] for entry in reply.json())


def torchserve_default(ports: StackPorts) -> str:
    url = f"http://127.0.0.1:{ports.torchserve.management}/models/digits"
    return str(call(url, headers=auth(ports, MANAGEMENT)).json()[0]["modelVersion"])


def torchserve_predict(ports: StackPorts, version: str, rows: np.ndarray) -> np.ndarray[Any, Any]:
    url = f"http://127.0.0.1:{ports.torchserve.inference}/predictions/digits/{version}"
    headers = {"content-type": "application/json", **auth(ports, INFERENCE)}
    reply = call(url, infer_body(rows), headers)
    assert reply.status == 200, reply.body
    (output,) = reply.json()["outputs"]
    return np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])


def _tfserving_call(ports: StackPorts, method: str, request: Any, response: Any) -> Any:
    with grpc.insecure_channel(f"127.0.0.1:{ports.tfserving_grpc}") as channel:
        call = channel.unary_unary(
            f"/tensorflow.serving.{method}",
            request_serializer=type(request).SerializeToString,
            response_deserializer=response.FromString,
        )
        return call(request, timeout=30)


def tfserving_states(ports: StackPorts, model: str = "digits") -> dict[int, str]:
    request = tfs.GetModelStatusRequest()
    request.model_spec.name = model
    reply = _tfserving_call(
        ports, "ModelService/GetModelStatus", request, tfs.GetModelStatusResponse
    )
    return {
        s.version: tfs.ModelVersionStatus.State.Name(s.state) for s in reply.model_version_status
    }


def tfserving_predict(ports: StackPorts, version: int, rows: np.ndarray) -> np.ndarray[Any, Any]:
    request = tfs.PredictRequest()
    request.model_spec.name = "digits"
    request.model_spec.version.value = version
    tensor = request.inputs["input"]
    tensor.dtype = tensorflow_pb2.DT_FLOAT
    for size in rows.shape:
        tensor.tensor_shape.dim.add().size = size
    tensor.tensor_content = np.ascontiguousarray(rows, dtype=np.float32).tobytes()
    reply = _tfserving_call(ports, "PredictionService/Predict", request, tfs.PredictResponse)
    output = reply.outputs["probabilities"]
    shape = [dim.size for dim in output.tensor_shape.dim]
    values = (
        np.frombuffer(output.tensor_content, dtype=np.float32)
        if output.tensor_content
        else np.asarray(output.float_val, dtype=np.float32)
    )
    return values.reshape(shape)


def tfserving_labels(ports: StackPorts) -> dict[str, int]:
    labels = {}
    for label in ("stable", "canary"):
        url = f"http://127.0.0.1:{ports.tfserving_rest}/v1/models/digits/labels/{label}"
        reply = call(url)
        if reply.status == 200:
            (entry,) = reply.json()["model_version_status"]
            labels[label] = int(entry["version"])
    return labels


def dumps(value: Any) -> str:
    return json.dumps(value, indent=1, default=str)
