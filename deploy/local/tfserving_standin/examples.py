"""What Classify and Regress share: tf.Examples in, through a one-input signature of one method."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import classification_pb2, input_pb2, model_pb2, regression_pb2

from deploy.local.tfserving_standin.core import ServerCore, model_spec, require_model_spec
from deploy.local.tfserving_standin.errors import Code, ServingError, invalid
from deploy.local.tfserving_standin.runtime import OutputTensor, run_signature
from deploy.local.tfserving_standin.servables import Servable
from deploy.local.tfserving_standin.signatures import EXAMPLES_INPUT, signature_key

ExamplesRequest: TypeAlias = (
    classification_pb2.ClassificationRequest | regression_pb2.RegressionRequest
)


@dataclass(frozen=True)
class ExamplesRun:
    """A signature's outputs for a request's examples."""

    servable: Servable
    signature_name: str
    outputs: Mapping[str, OutputTensor]
    num_examples: int

    def model_spec(self) -> model_pb2.ModelSpec:
        return model_spec(self.servable.name, self.servable.version, self.signature_name)


def serialized_examples(examples_input: input_pb2.Input) -> np.ndarray[Any, Any]:
    """The request's tf.Examples as a string vector; a context is prepended to each example."""
    kind = examples_input.WhichOneof("kind")
    blobs: list[bytes] = []
    if kind == "example_list":
        blobs = [e.SerializeToString() for e in examples_input.example_list.examples]
    elif kind == "example_list_with_context":
        with_context = examples_input.example_list_with_context
        context = with_context.context.SerializeToString()
        blobs = [context + e.SerializeToString() for e in with_context.examples]
    if not blobs:
        raise invalid("Input is empty.")
    return np.array(blobs, dtype=object)


def _examples_signature(
    servable: Servable, spec: model_pb2.ModelSpec, method: str, kind: str
) -> tuple[str, meta_graph_pb2.SignatureDef]:
    name = signature_key(spec)
    signature = servable.signature_defs.get(name)
    if signature is None:
        raise invalid(f"No signature was found with the name: {name}")
    if signature.method_name != method:
        raise invalid(
            f"Expected {kind} signature method_name to be {method}. Was: {signature.method_name}"
        )
    if len(signature.inputs) != 1:
        raise invalid("Expected one input Tensor.")
    if EXAMPLES_INPUT not in signature.inputs:
        raise ServingError(
            Code.FAILED_PRECONDITION, f"No {kind} inputs found in SignatureDef: {signature}"
        )
    return name, signature


def run_examples(
    core: ServerCore,
    request: ExamplesRequest,
    method: str,
    kind: str,
    check_outputs: Callable[[meta_graph_pb2.SignatureDef], None],
) -> ExamplesRun:
    """Check the signature (its outputs with ``check_outputs``), then run it on the examples."""
    spec = require_model_spec(request)
    servable = core.servable(spec)
    name, signature = _examples_signature(servable, spec, method, kind)
    check_outputs(signature)
    examples = serialized_examples(request.input)
    outputs = run_signature(servable, name, signature, {EXAMPLES_INPUT: examples})
    return ExamplesRun(servable, name, outputs, len(examples))
