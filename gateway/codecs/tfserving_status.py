"""TF Serving's REST renderings of model status and metadata, from the gateway's catalog."""

from __future__ import annotations

from typing import Any

from gateway.codecs.tfserving_metadata import DEFAULT_SIGNATURE, PREDICT_METHOD
from gateway.codecs.tfserving_tensor import DATATYPE_TO_DT
from gateway.inference import ModelMetadata, TensorSpec
from gateway.wire import tensorflow_pb2 as tf


def status_json(versions: list[tuple[str, bool]]) -> dict[str, Any]:
    """``GET /v1/models/{m}``: a version is AVAILABLE when a variant serving it is ready.

    A configured version with no ready variant is reported as LOADING (TF Serving's state for a
    version it knows of but cannot serve yet), with the reason in its status.
    """
    return {
        "model_version_status": [
            {
                "version": version,
                "state": "AVAILABLE" if ready else "LOADING",
                "status": (
                    {"error_code": "OK", "error_message": ""}
                    if ready
                    else {"error_code": "UNAVAILABLE", "error_message": "no ready backend"}
                ),
            }
            for version, ready in versions
        ]
    }


def metadata_json(name: str, version: str, metadata: ModelMetadata) -> dict[str, Any]:
    """``GET /v1/models/{m}/metadata`` in TF Serving's shape, built from what backends report."""
    return {
        "model_spec": {"name": name, "signature_name": "", "version": version},
        "metadata": {
            "signature_def": {
                "signature_def": {
                    DEFAULT_SIGNATURE: {
                        "inputs": {spec.name: _tensor_info(spec) for spec in metadata.inputs},
                        "outputs": {spec.name: _tensor_info(spec) for spec in metadata.outputs},
                        "method_name": PREDICT_METHOD,
                    }
                }
            }
        },
    }


def _tensor_info(spec: TensorSpec) -> dict[str, Any]:
    dtype = DATATYPE_TO_DT.get(spec.datatype, tf.DT_INVALID)
    return {
        "dtype": tf.DataType.Name(dtype),
        "tensor_shape": {
            "dim": [{"size": str(size), "name": ""} for size in spec.shape],
            "unknown_rank": False,
        },
        "name": spec.name,
    }
