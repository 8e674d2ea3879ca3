"""The gateway's gRPC messages: OIP ``ModelInfer`` and TF Serving ``Predict``, built and read.

OIP uses the client's own definitions (``tritonclient.grpc.service_pb2``); TF Serving uses the
gateway's wire-compatible re-declarations, so the load generator never imports TensorFlow (seconds
and hundreds of MB per process). Both send raw little-endian FP32 bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from tritonclient.grpc import service_pb2 as oip

from gateway.wire import tensorflow_pb2 as tf
from gateway.wire import tensorflow_serving_pb2 as tfs
from loadtests.endpoints import MODEL, OIP_GRPC, TFS_GRPC, Endpoint
from loadtests.payloads import as_probabilities
from model_store.digits import INPUT_NAME, OUTPUT_NAME, FloatArray

OIP_INFER_PATH = f"/{OIP_GRPC.name}"
TFS_PREDICT_PATH = f"/{TFS_GRPC.name}"


def oip_infer_request(rows: FloatArray, version: str) -> Any:
    """A ``ModelInferRequest`` with the batch as raw contents (as ``tritonclient`` sends it)."""
    request = oip.ModelInferRequest(model_name=MODEL, model_version=version)
    tensor = request.inputs.add()
    tensor.name, tensor.datatype = INPUT_NAME, "FP32"
    tensor.shape.extend(rows.shape)
    request.outputs.add().name = OUTPUT_NAME
    request.raw_input_contents.append(rows.astype("<f4", copy=False).tobytes())
    return request


def oip_answer(response: Any) -> tuple[FloatArray, str | None]:
    """``probabilities`` (raw or typed) and the version named by a ``ModelInferResponse``."""
    return oip_probabilities(response), response.model_version or None


def oip_probabilities(response: Any) -> FloatArray:
    """``probabilities`` from a ``ModelInferResponse``, raw or typed."""
    for index, output in enumerate(response.outputs):
        if output.name != OUTPUT_NAME:
            continue
        if len(response.raw_output_contents) > index:
            data = np.frombuffer(response.raw_output_contents[index], dtype="<f4")
        else:
            data = np.asarray(output.contents.fp32_contents, dtype=np.float32)
        return as_probabilities(data, list(output.shape))
    raise KeyError(f"no output {OUTPUT_NAME!r} in the answer")


def tfs_predict_request(rows: FloatArray, version: str) -> tfs.PredictRequest:
    """A ``PredictRequest`` (default signature) with the batch as ``tensor_content``."""
    request = tfs.PredictRequest()
    request.model_spec.name = MODEL
    if version:
        request.model_spec.version.value = int(version)
    tensor = request.inputs[INPUT_NAME]
    tensor.dtype = tf.DT_FLOAT
    tensor.tensor_shape.dim.extend(tf.TensorShapeProto.Dim(size=size) for size in rows.shape)
    tensor.tensor_content = rows.astype("<f4", copy=False).tobytes()
    return request


def tfs_answer(response: tfs.PredictResponse) -> tuple[FloatArray, str | None]:
    """``probabilities`` and the version named by a ``PredictResponse`` (its ``model_spec``)."""
    spec = response.model_spec
    version = str(spec.version.value) if spec.HasField("version") else None
    return tfs_probabilities(response), version


def tfs_probabilities(response: tfs.PredictResponse) -> FloatArray:
    """``probabilities`` from a ``PredictResponse``: ``tensor_content`` or ``float_val``."""
    if OUTPUT_NAME not in response.outputs:
        raise KeyError(f"no output {OUTPUT_NAME!r} in the answer")
    tensor = response.outputs[OUTPUT_NAME]
    if tensor.dtype != tf.DT_FLOAT:
        raise ValueError(f"probabilities should be DT_FLOAT, got {tf.DataType.Name(tensor.dtype)}")
    shape = [dim.size for dim in tensor.tensor_shape.dim]
    if tensor.tensor_content:
        data = np.frombuffer(tensor.tensor_content, dtype="<f4")
    else:
        data = np.asarray(tensor.float_val, dtype=np.float32)
    return as_probabilities(data, shape)


@dataclass(frozen=True)
class GrpcWay:
    """What ``grpc_users.DigitsGrpcUser`` needs to speak one gRPC way in."""

    endpoint: Endpoint
    method: str  # the full method path, "/package.Service/Method"
    encode: Callable[[FloatArray, str], Any]  # rows, model version ("" for none) -> request
    response_type: Any  # a protobuf message class: FromString reads the answer
    decode: Callable[[Any], tuple[FloatArray, str | None]]  # the answer -> probabilities, version


OIP_GRPC_WAY = GrpcWay(
    OIP_GRPC, OIP_INFER_PATH, oip_infer_request, oip.ModelInferResponse, oip_answer
)
TFS_GRPC_WAY = GrpcWay(
    TFS_GRPC, TFS_PREDICT_PATH, tfs_predict_request, tfs.PredictResponse, tfs_answer
)
