"""Classify: a classification signature's ``classes`` and ``scores`` for each example."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import classification_pb2

from deploy.local.tfserving_standin.core import ServerCore
from deploy.local.tfserving_standin.errors import Code, ServingError, invalid
from deploy.local.tfserving_standin.examples import run_examples
from deploy.local.tfserving_standin.formatting import enum_name, shape_text
from deploy.local.tfserving_standin.runtime import OutputTensor
from deploy.local.tfserving_standin.signatures import (
    CLASSES_OUTPUT,
    CLASSIFY_METHOD,
    SCORES_OUTPUT,
)


def _check_outputs(signature: meta_graph_pb2.SignatureDef) -> None:
    if len(signature.outputs) not in (1, 2):
        raise invalid(f"Expected one or two output Tensors, found {len(signature.outputs)}")
    if CLASSES_OUTPUT not in signature.outputs and SCORES_OUTPUT not in signature.outputs:
        raise ServingError(
            Code.FAILED_PRECONDITION,
            "Expected classification signature outputs to contain at least one of "
            f'"{CLASSES_OUTPUT}" or "{SCORES_OUTPUT}". Signature was: {signature}',
        )


def classify(
    core: ServerCore, request: classification_pb2.ClassificationRequest
) -> classification_pb2.ClassificationResponse:
    run = run_examples(core, request, CLASSIFY_METHOD, "classification", _check_outputs)
    response = classification_pb2.ClassificationResponse()
    response.model_spec.CopyFrom(run.model_spec())
    _fill_classifications(response.result, run.outputs, run.num_examples)
    return response


def _class_matrix(
    tensor: OutputTensor | None, dtype: int, num_examples: int, what: str
) -> np.ndarray[Any, Any] | None:
    if tensor is None:
        return None
    if tensor.value.ndim != 2:
        raise invalid(
            "Expected Tensor shape: [batch_size num_classes] but got "
            + shape_text(tensor.value.shape)
        )
    if tensor.dtype != dtype:
        raise invalid(
            f"Expected {what} Tensor of {enum_name(dtype)}. Got: {enum_name(tensor.dtype)}"
        )
    if tensor.value.shape[0] != num_examples:
        raise invalid(
            f"Expected {what} output batch size of {num_examples}. Got: {tensor.value.shape[0]}"
        )
    return tensor.value


def _fill_classifications(
    result: classification_pb2.ClassificationResult,
    outputs: Mapping[str, OutputTensor],
    num_examples: int,
) -> None:
    classes = _class_matrix(
        outputs.get(CLASSES_OUTPUT), types_pb2.DT_STRING, num_examples, "classes"
    )
    scores = _class_matrix(outputs.get(SCORES_OUTPUT), types_pb2.DT_FLOAT, num_examples, "scores")
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise invalid(
            "Tensors class and score should match in dim_size(1). "
            f"Got {classes.shape[1]} vs. {scores.shape[1]}"
        )
    reference = classes if classes is not None else scores
    num_classes = reference.shape[1] if reference is not None else 0
    for row in range(num_examples):
        classifications = result.classifications.add()
        for column in range(num_classes):
            entry = classifications.classes.add()
            if classes is not None:
                entry.label = bytes(classes[row, column]).decode("utf-8", "replace")
            if scores is not None:
                entry.score = float(scores[row, column])
