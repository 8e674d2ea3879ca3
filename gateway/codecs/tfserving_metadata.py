"""TF Serving signatures (gRPC ``SignatureDefMap`` or REST JSON) -> :class:`ModelMetadata`."""

from __future__ import annotations

from typing import Any

from gateway.codecs.tfserving_tensor import DT_TO_DATATYPE
from gateway.errors import BackendError
from gateway.inference import ModelMetadata, TensorSpec
from gateway.wire import tensorflow_pb2 as tf
from gateway.wire import tensorflow_serving_pb2 as tfs

PLATFORM = "tensorflow_savedmodel"
DEFAULT_SIGNATURE = "serving_default"
"""The signature a request without ``signature_name`` means (TF Serving's
``kDefaultServingSignatureDefKey``)."""
PREDICT_METHOD = "tensorflow/serving/predict"
"""The ``method_name`` of a predict signature."""


def metadata_from_signature_map(
    signatures: tfs.SignatureDefMap, signature_name: str, backend: str
) -> ModelMetadata:
    if signature_name not in signatures.signature_def:
        known = ", ".join(sorted(signatures.signature_def)) or "none"
        raise BackendError(
            f"backend {backend!r}: model has no signature {signature_name!r} (has: {known})"
        )
    signature = signatures.signature_def[signature_name]
    return ModelMetadata(
        platform=PLATFORM,
        inputs=tuple(_spec(key, signature.inputs[key]) for key in sorted(signature.inputs)),
        outputs=tuple(_spec(key, signature.outputs[key]) for key in sorted(signature.outputs)),
    )


def metadata_from_json(doc: Any, signature_name: str, backend: str) -> ModelMetadata:
    """Parse the body of ``GET /v1/models/{m}/versions/{v}/metadata``."""
    try:
        signature = doc["metadata"]["signature_def"]["signature_def"][signature_name]
        inputs = signature.get("inputs", {})
        outputs = signature.get("outputs", {})
        return ModelMetadata(
            platform=PLATFORM,
            inputs=tuple(_json_spec(key, inputs[key]) for key in sorted(inputs)),
            outputs=tuple(_json_spec(key, outputs[key]) for key in sorted(outputs)),
        )
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        raise BackendError(
            f"backend {backend!r} sent unreadable metadata for signature {signature_name!r}: "
            f"missing or bad {error}"
        ) from None


def _spec(key: str, info: tf.TensorInfo) -> TensorSpec:
    shape = () if info.tensor_shape.unknown_rank else tuple(d.size for d in info.tensor_shape.dim)
    return TensorSpec(key, DT_TO_DATATYPE.get(info.dtype, "UNKNOWN"), shape)


def _json_spec(key: str, info: dict[str, Any]) -> TensorSpec:
    name = str(info["dtype"])
    dtype = tf.DataType.Value(name) if name in tf.DataType.keys() else -1  # noqa: SIM118
    shape_doc = info.get("tensor_shape", {})
    dims = () if shape_doc.get("unknown_rank") else shape_doc.get("dim", [])
    return TensorSpec(
        key, DT_TO_DATATYPE.get(dtype, "UNKNOWN"), tuple(int(d["size"]) for d in dims)
    )
