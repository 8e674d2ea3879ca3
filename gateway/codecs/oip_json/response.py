"""OIP REST inference responses: rendered for a client, read from a backend, or renamed."""

from __future__ import annotations

import math
from typing import Any

import orjson

from gateway.codecs.oip_json.document import (
    datatype_and_shape,
    load_object,
    optional_str,
    parameters,
    split,
)
from gateway.codecs.oip_json.values import data_from_json, json_data
from gateway.codecs.oip_raw import tensor_bytes, tensor_data
from gateway.codecs.upstream_limit import NUMPY
from gateway.errors import BackendError, InvalidInput
from gateway.inference import InferRequest, InferResponse, Tensor


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
            entry["data"] = json_data(tensor)
        rendered.append(entry)
    doc: dict[str, Any] = {"model_name": response.model}
    if response.version is not None:
        doc["model_version"] = response.version
    if response.id is not None:
        doc["id"] = response.id
    if response.parameters:
        doc["parameters"] = response.parameters
    doc["outputs"] = rendered
    head = orjson.dumps(doc, option=NUMPY)
    if not blobs:
        return head, None
    return b"".join([head, *blobs]), len(head)


def rename_response(
    body: bytes, json_length: int | None, model: str, version: str
) -> tuple[bytes, int | None]:
    """An OIP server's response under the public model name and version, tensors untouched.

    Only the JSON part is parsed and written again; a binary part is appended as it came.
    """
    try:
        head, tail = split(body, json_length)
        doc = orjson.loads(head)
    except (orjson.JSONDecodeError, InvalidInput):
        raise BackendError("backend sent a response that is not JSON") from None
    if not isinstance(doc, dict):
        raise BackendError("backend sent a response that is not a JSON object")
    doc["model_name"] = model
    doc["model_version"] = version
    renamed = orjson.dumps(doc)
    if json_length is None:
        return renamed, None
    return b"".join([renamed, tail]), len(renamed)


def decode_response(body: bytes, json_length: int | None, backend: str) -> InferResponse:
    """Parse a backend's OIP response (JSON, or JSON plus binary outputs).

    Anything unreadable is the backend's fault (502).
    """
    try:
        head, tail = split(body, json_length)
        doc = load_object(head, f"response of backend {backend!r}")
        outputs_doc = doc.get("outputs")
        if not isinstance(outputs_doc, list):
            raise InvalidInput("'outputs' is missing")
        outputs = []
        offset = 0
        for item in outputs_doc:
            tensor, used = _decode_output(item, tail, offset)
            outputs.append(tensor)
            offset += used
        response_id = optional_str(doc.get("id"), "id")
        response_parameters = parameters(doc.get("parameters"), "response parameters")
    except InvalidInput as error:
        raise BackendError(f"backend {backend!r} sent an unreadable response: {error}") from None
    version = doc.get("model_version")
    return InferResponse(
        model=str(doc.get("model_name", "")),
        version=None if version is None else str(version),
        outputs=outputs,
        id=response_id,
        parameters=response_parameters,
    )


def _decode_output(item: Any, tail: memoryview, offset: int) -> tuple[Tensor, int]:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise InvalidInput("every output needs a name")
    where = f"output {item['name']!r}"
    datatype, shape = datatype_and_shape(item, where)
    output_parameters = parameters(item.get("parameters"), f"{where} parameters")
    size = output_parameters.get("binary_data_size")
    if isinstance(size, int) and not isinstance(size, bool):
        if size < 0 or offset + size > len(tail):
            raise InvalidInput(f"{where}: binary_data_size {size} runs past the body")
        data = tensor_data(tail[offset : offset + size], datatype, shape, where, "binary data")
        return Tensor(item["name"], datatype, data), size
    if "data" not in item:
        raise InvalidInput(f"{where} has no 'data'")
    count = math.prod(shape)
    return Tensor(
        item["name"], datatype, data_from_json(item["data"], datatype, shape, count, where)
    ), 0
