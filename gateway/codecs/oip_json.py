"""Open Inference Protocol (KServe v2) REST bodies, with the binary tensor extension.

A body is JSON, optionally followed by raw tensor bytes; ``Inference-Header-Content-Length`` tells
where the JSON ends. Binary inputs carry ``parameters.binary_data_size``; outputs are returned
binary when asked for per output (``parameters.binary_data``) or per request
(``parameters.binary_data_output``). BYTES elements are 4-byte little-endian length-prefixed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson

from gateway.codecs.oip_raw import tensor_bytes, tensor_data
from gateway.errors import BackendError, InvalidInput
from gateway.inference import (
    DATATYPES,
    Formats,
    InferRequest,
    InferResponse,
    Parameters,
    Payload,
    RequestedOutput,
    Tensor,
)

_INT_KINDS = ("i", "u")
_NUMPY_JSON = orjson.OPT_SERIALIZE_NUMPY


def decode_request(
    body: bytes, json_length: int | None, model: str, version: str | None, lazy: bool = False
) -> InferRequest:
    """Parse a client's inference request; raise InvalidInput naming what is wrong.

    With ``lazy`` only the JSON is parsed now; tensors are converted (and checked) when a backend
    first needs them, so a body forwarded as it is never pays for it.
    """
    head, tail = _split(body, json_length)
    doc = _load_object(head, "request body")
    inputs_doc = doc.get("inputs")
    if not isinstance(inputs_doc, list) or not inputs_doc:
        raise InvalidInput("'inputs' must be a non-empty list of tensors")
    parameters = _parameters(doc.get("parameters"), "request parameters")
    binary_output = parameters.get("binary_data_output", False)
    if not isinstance(binary_output, bool):
        raise InvalidInput("parameters.binary_data_output must be true or false")
    request = InferRequest(
        model=model,
        version=version,
        outputs=_requested_outputs(doc.get("outputs")),
        id=_optional_str(doc.get("id"), "id"),
        parameters=parameters,
        binary_output=binary_output,
        payload=Payload(Formats.OIP_JSON, body, json_length=json_length),
    )
    if lazy:
        _check_inputs(inputs_doc, len(tail))

        async def decode() -> list[Tensor]:
            return _decode_inputs(inputs_doc, tail)

        request.decode_inputs = decode
    else:
        request.inputs = _decode_inputs(inputs_doc, tail)
    return request


def _split(body: bytes, json_length: int | None) -> tuple[bytes | memoryview, memoryview]:
    if json_length is None:
        return body, memoryview(b"")
    if not 0 < json_length <= len(body):
        raise InvalidInput(
            f"Inference-Header-Content-Length is {json_length} but the body has {len(body)} bytes"
        )
    view = memoryview(body)
    return view[:json_length], view[json_length:]


def _check_inputs(inputs_doc: list[Any], binary_bytes: int) -> None:
    """What can be checked without converting a value: names, datatypes, shapes, sizes."""
    claimed = 0
    for index, item in enumerate(inputs_doc):
        _, where, _, shape, parameters = _input_header(index, item)
        size = _binary_size(parameters, where)
        if size is not None:
            claimed += size
            continue
        data = item.get("data")
        if not isinstance(data, list):
            raise InvalidInput(f"{where} has neither 'data' nor parameters.binary_data_size")
        count = math.prod(shape)
        if (not data or not isinstance(data[0], list)) and len(data) != count:
            raise InvalidInput(
                f"{where}: shape {list(shape)} needs {count} values, data has {len(data)}"
            )
    if claimed != binary_bytes:
        raise InvalidInput(
            f"inputs claim {claimed} bytes of binary data, the body carries {binary_bytes}"
        )


def _decode_inputs(inputs_doc: list[Any], tail: memoryview) -> list[Tensor]:
    inputs: list[Tensor] = []
    offset = 0
    for index, item in enumerate(inputs_doc):
        tensor, used = _decode_input(index, item, tail, offset)
        inputs.append(tensor)
        offset += used
    if offset != len(tail):
        raise InvalidInput(
            f"{len(tail) - offset} bytes of binary data follow the JSON that no input claims"
        )
    return inputs


def select_outputs(
    outputs: list[Tensor], request: InferRequest, model: str
) -> list[tuple[Tensor, bool]]:
    """The outputs the client asked for (all if it named none), each with "send it binary"."""
    if not request.outputs:
        return [(tensor, request.binary_output) for tensor in outputs]
    by_name = {tensor.name: tensor for tensor in outputs}
    selected = []
    for wanted in request.outputs:
        tensor = by_name.get(wanted.name)
        if tensor is None:
            known = ", ".join(sorted(by_name)) or "none"
            raise InvalidInput(
                f"unknown output {wanted.name!r} requested; model {model!r} has outputs: {known}"
            )
        selected.append((tensor, request.binary_output if wanted.binary is None else wanted.binary))
    return selected


def encode_response(
    outputs: list[Tensor], response: InferResponse, request: InferRequest
) -> tuple[bytes, int | None]:
    """Render a response for the client; returns the body and, if binary, the JSON length."""
    selected = select_outputs(outputs, request, response.model)
    rendered: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for tensor, binary in selected:
        entry: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": list(tensor.shape),
        }
        if binary:
            blob = tensor_bytes(tensor)
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = _json_data(tensor)
        rendered.append(entry)
    doc: dict[str, Any] = {"model_name": response.model}
    if response.version is not None:
        doc["model_version"] = response.version
    if response.id is not None:
        doc["id"] = response.id
    if response.parameters:
        doc["parameters"] = response.parameters
    doc["outputs"] = rendered
    head = orjson.dumps(doc, option=_NUMPY_JSON)
    if not blobs:
        return head, None
    return b"".join([head, *blobs]), len(head)


def encode_request(request: InferRequest, inputs: list[Tensor]) -> bytes:
    """OIP JSON for a backend that reads it (TorchServe's kservev2 envelope): no binary part."""
    doc: dict[str, Any] = {}
    if request.id is not None:
        doc["id"] = request.id
    doc["inputs"] = [
        {
            "name": tensor.name,
            "shape": list(tensor.shape),
            "datatype": tensor.datatype,
            "data": _json_data(tensor),
        }
        for tensor in inputs
    ]
    if request.outputs:
        doc["outputs"] = [{"name": wanted.name} for wanted in request.outputs]
    return orjson.dumps(doc, option=_NUMPY_JSON)


def rename_response(
    body: bytes, json_length: int | None, model: str, version: str
) -> tuple[bytes, int | None]:
    """An OIP server's response under the public model name and version, tensors untouched.

    Only the JSON part is parsed and written again; a binary part is appended as it came.
    """
    head, tail = _split(body, json_length)
    try:
        doc = orjson.loads(head)
    except orjson.JSONDecodeError:
        raise BackendError("backend sent a response that is not JSON") from None
    if not isinstance(doc, dict):
        raise BackendError("backend sent a response that is not a JSON object")
    doc["model_name"] = model
    doc["model_version"] = version
    renamed = orjson.dumps(doc)
    if json_length is None:
        return renamed, None
    return b"".join([renamed, tail]), len(renamed)


def encode_binary_request(request: InferRequest, inputs: list[Tensor]) -> tuple[bytes, int]:
    """OIP REST for an OIP backend, every input in the binary extension; also the JSON length."""
    entries: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for tensor in inputs:
        blob = tensor_bytes(tensor)
        blobs.append(blob)
        entries.append(
            {
                "name": tensor.name,
                "shape": list(tensor.shape),
                "datatype": tensor.datatype,
                "parameters": {"binary_data_size": len(blob)},
            }
        )
    doc: dict[str, Any] = {}
    if request.id is not None:
        doc["id"] = request.id
    if request.parameters:
        doc["parameters"] = request.parameters
    doc["inputs"] = entries
    if request.outputs:
        doc["outputs"] = [
            {"name": wanted.name, "parameters": {"binary_data": True}} for wanted in request.outputs
        ]
    else:
        doc.setdefault("parameters", {})["binary_data_output"] = True
    head = orjson.dumps(doc)
    return b"".join([head, *blobs]), len(head)


def decode_response(body: bytes, json_length: int | None, backend: str) -> InferResponse:
    """Parse a backend's OIP response (JSON, or JSON plus binary outputs).

    Anything unreadable is the backend's fault (502).
    """
    try:
        head, tail = _split(body, json_length)
        doc = _load_object(head, f"response of backend {backend!r}")
        outputs_doc = doc.get("outputs")
        if not isinstance(outputs_doc, list):
            raise InvalidInput("'outputs' is missing")
        outputs = []
        offset = 0
        for item in outputs_doc:
            tensor, used = _decode_output(item, tail, offset)
            outputs.append(tensor)
            offset += used
    except InvalidInput as error:
        raise BackendError(f"backend {backend!r} sent an unreadable response: {error}") from None
    version = doc.get("model_version")
    return InferResponse(
        model=str(doc.get("model_name", "")),
        version=None if version is None else str(version),
        outputs=outputs,
        id=_optional_str(doc.get("id"), "id"),
        parameters=_parameters(doc.get("parameters"), "response parameters"),
    )


def _load_object(raw: bytes | memoryview, what: str) -> dict[str, Any]:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise InvalidInput(f"{what} is not valid JSON: {error}") from None
    if not isinstance(doc, dict):
        raise InvalidInput(f"{what} must be a JSON object")
    return doc


def _input_header(index: int, item: Any) -> tuple[str, str, str, tuple[int, ...], Parameters]:
    """Name, how errors call it, datatype, shape and parameters of ``inputs[index]``."""
    if not isinstance(item, dict):
        raise InvalidInput(f"inputs[{index}] must be an object")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"inputs[{index}].name must be a non-empty string")
    where = f"input {name!r}"
    datatype, shape = _datatype_and_shape(item, where)
    return name, where, datatype, shape, _parameters(item.get("parameters"), f"{where} parameters")


def _binary_size(parameters: Parameters, where: str) -> int | None:
    size = parameters.get("binary_data_size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise InvalidInput(f"{where}: binary_data_size must be a non-negative integer")
    return size


def _decode_input(index: int, item: Any, tail: memoryview, offset: int) -> tuple[Tensor, int]:
    name, where, datatype, shape, parameters = _input_header(index, item)
    size = _binary_size(parameters, where)
    parameters.pop("binary_data_size", None)
    if size is not None:
        if offset + size > len(tail):
            raise InvalidInput(
                f"{where}: binary_data_size is {size} but only {len(tail) - offset} bytes "
                "of binary data remain"
            )
        chunk = tail[offset : offset + size]
        data = tensor_data(chunk, datatype, shape, where, "binary data")
        return Tensor(name, datatype, data, parameters or None), size
    if "data" not in item:
        raise InvalidInput(f"{where} has neither 'data' nor parameters.binary_data_size")
    data = _data_from_json(item["data"], datatype, shape, where)
    return Tensor(name, datatype, data, parameters or None), 0


def _decode_output(item: Any, tail: memoryview, offset: int) -> tuple[Tensor, int]:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise InvalidInput("every output needs a name")
    where = f"output {item['name']!r}"
    datatype, shape = _datatype_and_shape(item, where)
    parameters = _parameters(item.get("parameters"), f"{where} parameters")
    size = parameters.get("binary_data_size")
    if isinstance(size, int) and not isinstance(size, bool):
        if offset + size > len(tail):
            raise InvalidInput(f"{where}: binary_data_size {size} runs past the body")
        data = tensor_data(tail[offset : offset + size], datatype, shape, where, "binary data")
        return Tensor(item["name"], datatype, data), size
    if "data" not in item:
        raise InvalidInput(f"{where} has no 'data'")
    return Tensor(item["name"], datatype, _data_from_json(item["data"], datatype, shape, where)), 0


def _datatype_and_shape(item: dict[str, Any], where: str) -> tuple[str, tuple[int, ...]]:
    datatype = item.get("datatype")
    if datatype not in DATATYPES:
        raise InvalidInput(
            f"{where}: unknown datatype {datatype!r} (one of {', '.join(DATATYPES)})"
        )
    shape = item.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise InvalidInput(f"{where}: shape must be a list of non-negative integers, got {shape!r}")
    return datatype, tuple(shape)


def _data_from_json(
    data: Any, datatype: str, shape: tuple[int, ...], where: str
) -> np.ndarray[Any, Any]:
    count = math.prod(shape)
    if datatype == "BYTES":
        flat = _flatten_bytes(data, where)
        if len(flat) != count:
            raise InvalidInput(
                f"{where}: shape {list(shape)} needs {count} values, data has {len(flat)}"
            )
        array = np.empty(count, dtype=object)
        array[:] = flat
        return array.reshape(shape)
    try:
        raw = np.asarray(data)
    except ValueError:
        raise InvalidInput(f"{where}: data must be a (nested) list of numbers") from None
    dtype = DATATYPES[datatype]
    if raw.size != count:
        raise InvalidInput(
            f"{where}: shape {list(shape)} needs {count} values, data has {raw.size}"
        )
    if raw.dtype.kind not in _accepted_kinds(dtype) and raw.size:
        raise InvalidInput(f"{where}: data must hold {datatype} values")
    if dtype.kind in _INT_KINDS and raw.size:
        info = np.iinfo(dtype)
        if raw.min() < info.min or raw.max() > info.max:
            raise InvalidInput(f"{where}: a value is out of range for {datatype}")
    return raw.astype(dtype, copy=False).reshape(shape)


def _accepted_kinds(dtype: np.dtype[Any]) -> str:
    if dtype.kind == "b":
        return "b"
    if dtype.kind in _INT_KINDS:
        return "iu"
    return "biuf"


def _flatten_bytes(data: Any, where: str) -> list[bytes]:
    flat: list[bytes] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, str):
            flat.append(item.encode())
        else:
            raise InvalidInput(f"{where}: BYTES data must be strings")
    return flat


def _json_data(tensor: Tensor) -> Any:
    data = tensor.data
    if tensor.datatype == "BYTES":
        return [
            item.decode(errors="replace") if isinstance(item, bytes) else str(item)
            for item in data.ravel()
        ]
    return np.ascontiguousarray(data).ravel()


def _parameters(value: Any, what: str) -> Parameters:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a JSON object")
    return dict(value)


def _optional_str(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string")
    return value


def _requested_outputs(value: Any) -> list[RequestedOutput]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput("'outputs' must be a list")
    requested: list[RequestedOutput] = []
    for index, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InvalidInput(f"outputs[{index}] must be an object with a name")
        parameters = _parameters(item.get("parameters"), f"outputs[{index}].parameters")
        binary = parameters.get("binary_data")
        if binary is not None and not isinstance(binary, bool):
            raise InvalidInput(f"outputs[{index}].parameters.binary_data must be true or false")
        requested.append(RequestedOutput(item["name"], binary))
    return requested
