"""The names TF Serving looks for in a SavedModel: tag, signature keys, methods, tensor aliases."""

from __future__ import annotations

from tensorflow_serving.apis import model_pb2

SERVE_TAG = "serve"
DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
EXAMPLES_INPUT = "inputs"
CLASSES_OUTPUT = "classes"
SCORES_OUTPUT = "scores"
REGRESSION_OUTPUT = "outputs"
# The one field GetModelMetadata serves.
SIGNATURE_DEF_FIELD = "signature_def"


def signature_key(spec: model_pb2.ModelSpec) -> str:
    """The signature a request names, or the default one."""
    key: str = spec.signature_name or DEFAULT_SIGNATURE
    return key
