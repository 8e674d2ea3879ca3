"""Open Inference Protocol gRPC messages (``inference.GRPCInferenceService``) <-> tensors.

A tensor travels either typed, in the ``InferTensorContents`` field of its datatype family, or
raw: one little-endian blob per tensor in ``raw_input_contents`` / ``raw_output_contents``, in
tensor order, BYTES elements each prefixed with a 4-byte little-endian length. Raw blobs are
wrapped with ``np.frombuffer``, never copied.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

import numpy as np
import orjson

from gateway.codecs.limits import Budget, checked_shape
from gateway.codecs.oip_json import select_outputs
from gateway.codecs.oip_raw import tensor_bytes, tensor_data
from gateway.errors import InvalidInput
from gateway.inference import (
    DATATYPES,
    InferRequest,
    InferResponse,
    Parameters,
    RequestedOutput,
    Tensor,
)
from gateway.wire import oip_pb2 as oip

# The typed field of each datatype, and the numpy type its values arrive in. FP16 has none.
CONTENTS: dict[str, tuple[str, np.dtype[Any]]] = {
    "BOOL": ("bool_contents", np.dtype(np.bool_)),
    "UINT8": ("uint_contents", np.dtype(np.uint32)),
    "UINT16": ("uint_contents", np.dtype(np.uint32)),
    "UINT32": ("uint_contents", np.dtype(np.uint32)),
    "UINT64": ("uint64_contents", np.dtype(np.uint64)),
    "INT8": ("int_contents", np.dtype(np.int32)),
    "INT16": ("int_contents", np.dtype(np.int32)),
    "INT32": ("int_contents", np.dtype(np.int32)),
    "INT64": ("int64_contents", np.dtype(np.int64)),
    "FP32": ("fp32_contents", np.dtype(np.float32)),
    "FP64": ("fp64_contents", np.dtype(np.float64)),
    "BYTES": ("bytes_contents", np.dtype(object)),
}
_INT64_MAX = 2**63 - 1
# Triton extensions that would change what a tensor means: refused rather than ignored.
_UNSUPPORTED = {"shared_memory_region": "shared memory", "classification": "classification"}


def decode_request(message: oip.ModelInferRequest, limit: int) -> InferRequest:
    """A client's ModelInferRequest; InvalidInput (or PayloadTooLarge, past ``limit`` decoded
    bytes) names the first problem found."""
    if not message.inputs:
        raise InvalidInput("a ModelInferRequest needs at least one input")
    raw = message.raw_input_contents
    if raw and len(raw) != len(message.inputs):
        raise InvalidInput(
            f"raw_input_contents has {len(raw)} entries for {len(message.inputs)} inputs: "
            "send every input raw, or none"
        )
    budget = Budget(limit)
    inputs = [
        _decode_input(item, raw[index] if raw else None, budget)
        for index, item in enumerate(message.inputs)
    ]
    outputs = []
    for wanted in message.outputs:
        _refuse_extensions(wanted.parameters, f"output {wanted.name!r}")
        outputs.append(RequestedOutput(wanted.name))
    return InferRequest(
        model=message.model_name,
        version=message.model_version or None,
        inputs=inputs,
        outputs=outputs,
        id=message.id or None,
        parameters=parameters_from_proto(message.parameters),
    )


def encode_response(
    outputs: list[Tensor], response: InferResponse, request: InferRequest, raw: bool
) -> oip.ModelInferResponse:
    """The reply; raw contents when asked, or when an output has no typed field (FP16)."""
    selected = [tensor for tensor, _ in select_outputs(outputs, request, response.model)]
    message = oip.ModelInferResponse(
        model_name=response.model, model_version=response.version or "", id=response.id or ""
    )
    fill_parameters(message.parameters, response.parameters)
    # The protocol allows raw for all outputs or for none.
    raw = raw or any(tensor.datatype not in CONTENTS for tensor in selected)
    for tensor in selected:
        entry = message.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
        fill_parameters(entry.parameters, tensor.parameters or {})
        if raw:
            message.raw_output_contents.append(tensor_bytes(tensor))
        else:
            _fill_contents(entry.contents, tensor)
    return message


def parameters_from_proto(entries: Mapping[str, oip.InferParameter]) -> Parameters:
    values: Parameters = {}
    for key, parameter in entries.items():
        choice = parameter.WhichOneof("parameter_choice")
        values[key] = getattr(parameter, choice) if choice is not None else None
    return values


def fill_parameters(target: MutableMapping[str, oip.InferParameter], values: Parameters) -> None:
    for key, value in values.items():
        parameter = target[key]
        if isinstance(value, bool):
            parameter.bool_param = value
        elif isinstance(value, int) and value > _INT64_MAX:
            parameter.uint64_param = value
        elif isinstance(value, int):
            parameter.int64_param = value
        elif isinstance(value, float):
            parameter.double_param = value
        elif isinstance(value, str):
            parameter.string_param = value
        else:  # a backend's JSON object or list: keep it readable
            parameter.string_param = orjson.dumps(value).decode()


def _decode_input(
    item: oip.ModelInferRequest.InferInputTensor, raw: bytes | None, budget: Budget
) -> Tensor:
    if not item.name:
        raise InvalidInput("every input needs a name")
    where = f"input {item.name!r}"
    datatype = item.datatype
    if datatype not in DATATYPES:
        raise InvalidInput(
            f"{where}: unknown datatype {datatype!r} (one of {', '.join(DATATYPES)})"
        )
    shape = checked_shape(where, item.shape)
    count = budget.charge(where, shape, datatype)
    _refuse_extensions(item.parameters, where)
    if raw is not None:
        if item.HasField("contents"):
            raise InvalidInput(f"{where} has both contents and raw_input_contents")
        data = tensor_data(raw, datatype, shape, where, "raw content")
    elif item.HasField("contents"):
        data = typed_data(item.contents, datatype, shape, count, where)
    else:
        raise InvalidInput(f"{where} has no data: set contents or raw_input_contents")
    return Tensor(item.name, datatype, data, parameters_from_proto(item.parameters) or None)


def _refuse_extensions(entries: Mapping[str, oip.InferParameter], where: str) -> None:
    for key, extension in _UNSUPPORTED.items():
        if key in entries:
            raise InvalidInput(f"{where}: {extension} is not supported by the gateway")


def typed_data(
    contents: oip.InferTensorContents,
    datatype: str,
    shape: tuple[int, ...],
    count: int,
    where: str,
) -> np.ndarray[Any, Any]:
    typed = CONTENTS.get(datatype)
    if typed is None:
        raise InvalidInput(
            f"{where}: {datatype} has no typed contents; send it in raw_input_contents"
        )
    field, carrier = typed
    values = getattr(contents, field)
    if len(values) != count:
        raise InvalidInput(
            f"{where}: shape {list(shape)} needs {count} values, contents.{field} has {len(values)}"
        )
    if datatype == "BYTES":
        array = np.empty(count, dtype=object)
        array[:] = list(values)
        return array.reshape(shape)
    wide = np.fromiter(values, dtype=carrier, count=count)
    dtype = DATATYPES[datatype]
    if dtype != carrier and count:
        info = np.iinfo(dtype)
        if wide.min() < info.min or wide.max() > info.max:
            raise InvalidInput(f"{where}: a value is out of range for {datatype}")
    return wide.astype(dtype, copy=False).reshape(shape)


def _fill_contents(contents: oip.InferTensorContents, tensor: Tensor) -> None:
    field, _ = CONTENTS[tensor.datatype]
    values = getattr(contents, field)
    if tensor.datatype == "BYTES":
        values.extend(
            item if isinstance(item, bytes) else str(item).encode() for item in tensor.data.flat
        )
    else:
        values.extend(tensor.data.ravel().tolist())
