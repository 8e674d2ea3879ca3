"""Running a signature with TensorFlow; TensorFlow's errors as TF Serving reports them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

from deploy.local.tfserving_standin.errors import CODE_BY_NUMBER, Code, ServingError, invalid
from deploy.local.tfserving_standin.servables import Servable

_EAGER_PREFIX = re.compile(
    r"\AGraph execution error:\s*(?:Detected at node .*?<stack traces unavailable>\s*)?", re.S
)
_EAGER_SUFFIX = re.compile(r"\s*\[Op:[^\]]*\]\s*\Z")


@dataclass(frozen=True)
class OutputTensor:
    dtype: int  # a types_pb2.DataType
    value: np.ndarray[Any, Any]


def _tf_error(exc: tf.errors.OpError) -> ServingError:
    # Eager execution wraps the runtime's message; TF Serving's session reports it bare.
    message = _EAGER_SUFFIX.sub("", _EAGER_PREFIX.sub("", exc.message))
    return ServingError(CODE_BY_NUMBER.get(exc.error_code, Code.UNKNOWN), message)


def run_signature(
    servable: Servable,
    signature_name: str,
    signature: meta_graph_pb2.SignatureDef,
    inputs: Mapping[str, np.ndarray[Any, Any]],
) -> dict[str, OutputTensor]:
    function = servable.functions.get(signature_name)
    if function is None:
        raise ServingError(Code.INTERNAL, f"signature {signature_name} cannot be run")
    try:
        feeds = {
            alias: tf.convert_to_tensor(value, dtype=tf.as_dtype(signature.inputs[alias].dtype))
            for alias, value in inputs.items()
        }
        results = function(**feeds)
    except tf.errors.OpError as exc:
        raise _tf_error(exc) from exc
    except (TypeError, ValueError) as exc:
        raise invalid(str(exc)) from exc
    return {
        alias: OutputTensor(int(tensor.dtype.as_datatype_enum), np.asarray(tensor.numpy()))
        for alias, tensor in results.items()
    }
