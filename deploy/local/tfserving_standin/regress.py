"""Regress: a regression signature's one float ``outputs`` value for each example."""

from __future__ import annotations

from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import regression_pb2

from deploy.local.tfserving_standin.core import ServerCore
from deploy.local.tfserving_standin.errors import Code, ServingError, invalid
from deploy.local.tfserving_standin.examples import run_examples
from deploy.local.tfserving_standin.formatting import enum_name, shape_text
from deploy.local.tfserving_standin.runtime import OutputTensor
from deploy.local.tfserving_standin.signatures import REGRESS_METHOD, REGRESSION_OUTPUT


def _check_outputs(signature: meta_graph_pb2.SignatureDef) -> None:
    if len(signature.outputs) != 1:
        raise invalid("Expected one output Tensor.")
    if REGRESSION_OUTPUT not in signature.outputs:
        raise ServingError(
            Code.FAILED_PRECONDITION, f"No regression outputs found in SignatureDef: {signature}"
        )


def regress(
    core: ServerCore, request: regression_pb2.RegressionRequest
) -> regression_pb2.RegressionResponse:
    run = run_examples(core, request, REGRESS_METHOD, "regression", _check_outputs)
    response = regression_pb2.RegressionResponse()
    response.model_spec.CopyFrom(run.model_spec())
    for value in _regression_values(run.outputs[REGRESSION_OUTPUT], run.num_examples):
        response.result.regressions.add(value=value)
    return response


def _regression_values(tensor: OutputTensor, num_examples: int) -> list[float]:
    shape = tensor.value.shape
    if tensor.dtype != types_pb2.DT_FLOAT:
        raise invalid(f"Expected output Tensor of DT_FLOAT.  Got: {enum_name(tensor.dtype)}")
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
        raise invalid(
            "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] "
            f"but got {shape_text(shape)}"
        )
    if shape[0] != num_examples:
        raise invalid(
            f"Input batch size did not match output batch size: {num_examples} vs. {shape[0]}"
        )
    return [float(v) for v in tensor.value.ravel()]
