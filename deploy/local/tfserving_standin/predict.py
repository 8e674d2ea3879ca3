"""Predict: a request's inputs and output filter checked against the signature, then run."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import model_pb2

from deploy.local.tfserving_standin.core import ServerCore
from deploy.local.tfserving_standin.errors import Code, ServingError, invalid
from deploy.local.tfserving_standin.formatting import braced, dtype_name
from deploy.local.tfserving_standin.runtime import OutputTensor, run_signature
from deploy.local.tfserving_standin.servables import Servable
from deploy.local.tfserving_standin.signatures import (
    CLASSIFY_METHOD,
    PREDICT_METHOD,
    REGRESS_METHOD,
    signature_key,
)
from deploy.local.tfserving_standin.tensor_proto import proto_to_array

# gRPC requests bring TensorProtos, REST requests arrays already parsed against the signature.
Inputs = Mapping[str, tensor_pb2.TensorProto | np.ndarray[Any, Any]]


@dataclass(frozen=True)
class Prediction:
    servable: Servable
    signature_name: str
    outputs: Mapping[str, OutputTensor]


def _check_input_names(
    signature: meta_graph_pb2.SignatureDef, requested: Iterable[str]
) -> list[str]:
    sent = sorted(requested)
    expected = set(signature.inputs)
    if len(sent) != len(expected):
        raise invalid(
            f"input size does not match signature: {len(sent)}!={len(expected)} "
            f"len({braced(sent)}) != len({braced(expected)}). "
            f"Sent extra: {braced(set(sent) - expected)}. "
            f"Missing but required: {braced(expected - set(sent))}."
        )
    for alias in sent:
        if alias not in expected:
            raise invalid(
                f"input tensor alias not found in signature: {alias}. "
                f"Inputs expected to be in the set {braced(expected)}."
            )
    return sent


def _output_aliases(
    signature: meta_graph_pb2.SignatureDef, output_filter: Sequence[str]
) -> list[str]:
    if not output_filter:
        return sorted(signature.outputs)
    seen: set[str] = set()
    for alias in output_filter:
        if alias not in signature.outputs:
            raise invalid(
                f"output tensor alias not found in signature: {alias} "
                f"Outputs expected to be in the set {braced(signature.outputs)}."
            )
        if alias in seen:
            raise invalid(f"duplicate output tensor alias: {alias}")
        seen.add(alias)
    return list(output_filter)


def _input_arrays(
    signature: meta_graph_pb2.SignatureDef, inputs: Inputs
) -> dict[str, np.ndarray[Any, Any]]:
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    for position, alias in enumerate(_check_input_names(signature, inputs)):
        value = inputs[alias]
        if isinstance(value, np.ndarray):
            arrays[alias] = value
            continue
        arrays[alias] = proto_to_array(alias, value)
        expected = signature.inputs[alias].dtype
        if value.dtype != expected:
            # The message TF's function call frame gives when a session is fed the wrong type.
            raise invalid(
                f"Expects arg[{position}] to be {dtype_name(expected)} "
                f"but {dtype_name(value.dtype)} is provided"
            )
    return arrays


def input_infos(
    core: ServerCore, spec: model_pb2.ModelSpec
) -> Mapping[str, meta_graph_pb2.TensorInfo]:
    """The signature's inputs, as the REST API looks them up before it parses the JSON."""
    name = signature_key(spec)
    signature = core.servable(spec).signature_defs.get(name)
    if signature is None:
        raise invalid(f'Serving signature name: "{name}" not found in signature def')
    inputs: Mapping[str, meta_graph_pb2.TensorInfo] = signature.inputs
    return inputs


def predict(
    core: ServerCore, spec: model_pb2.ModelSpec, inputs: Inputs, output_filter: Sequence[str] = ()
) -> Prediction:
    servable = core.servable(spec)
    name = signature_key(spec)
    signature = servable.signature_defs.get(name)
    if signature is None:
        raise ServingError(Code.FAILED_PRECONDITION, f'Serving signature key "{name}" not found.')
    if signature.method_name not in (PREDICT_METHOD, CLASSIFY_METHOD, REGRESS_METHOD):
        raise ServingError(
            Code.INTERNAL,
            "Expected prediction signature method_name to be one of "
            f"{{{PREDICT_METHOD}, {CLASSIFY_METHOD}, {REGRESS_METHOD}}}. "
            f"Was: {signature.method_name}",
        )
    arrays = _input_arrays(signature, inputs)
    aliases = _output_aliases(signature, output_filter)
    outputs = run_signature(servable, name, signature, arrays)
    return Prediction(servable, name, {alias: outputs[alias] for alias in aliases})
