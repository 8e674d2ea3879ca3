"""A client's OIP REST inference request -> :class:`InferRequest`.

Everything that needs no value converted is checked at once: names, datatypes, shapes, the
decoded size of every input against the limit, and the binary part's layout. Values are
converted when a backend first needs tensors (a body forwarded as it is never pays for it).
"""

from __future__ import annotations

from typing import Any

from gateway.codecs.limits import Budget
from gateway.codecs.oip_json.document import (
    binary_size,
    datatype_and_shape,
    load_object,
    optional_str,
    parameters,
    split,
)
from gateway.codecs.oip_json.values import data_from_json
from gateway.codecs.oip_raw import tensor_data
from gateway.errors import InvalidInput
from gateway.inference import (
    Formats,
    InferRequest,
    Parameters,
    Payload,
    RequestedOutput,
    Tensor,
)

# One entry of ``inputs``, checked, its values still JSON or undecoded bytes: name, how errors
# call it, datatype, shape, element count, parameters, JSON data, binary part. A plain tuple:
# one is built per input of every request, and a dataclass costs 40 times as much.
_Input = tuple[str, str, str, tuple[int, ...], int, Parameters | None, Any, slice | None]


def decode_request(
    body: bytes,
    json_length: int | None,
    model: str,
    version: str | None,
    *,
    limit: int,
    lazy: bool = False,
) -> InferRequest:
    """Parse a client's inference request; raise InvalidInput (or PayloadTooLarge, past
    ``limit`` decoded bytes) naming what is wrong.

    With ``lazy`` the values are converted (and checked) when a backend first needs them.
    """
    head, tail = split(body, json_length)
    doc = load_object(head, "request body")
    inputs_doc = doc.get("inputs")
    if not isinstance(inputs_doc, list) or not inputs_doc:
        raise InvalidInput("'inputs' must be a non-empty list of tensors")
    request_parameters = parameters(doc.get("parameters"), "request parameters")
    binary_output = request_parameters.get("binary_data_output", False)
    if not isinstance(binary_output, bool):
        raise InvalidInput("parameters.binary_data_output must be true or false")
    checked = _checked_inputs(inputs_doc, len(tail), Budget(limit))
    request = InferRequest(
        model=model,
        version=version,
        outputs=requested_outputs(doc.get("outputs")),
        id=optional_str(doc.get("id"), "id"),
        parameters=request_parameters,
        binary_output=binary_output,
        payload=Payload(Formats.OIP_JSON, body, json_length=json_length),
    )
    if lazy:

        async def decode() -> list[Tensor]:
            return [_tensor(item, tail) for item in checked]

        request.decode_inputs = decode
    else:
        request.inputs = [_tensor(item, tail) for item in checked]
    return request


def decode_inputs(doc: dict[str, Any], limit: int) -> list[Tensor]:
    """The tensors of an already parsed OIP JSON request without a binary part."""
    inputs_doc = doc.get("inputs")
    if not isinstance(inputs_doc, list) or not inputs_doc:
        raise InvalidInput("'inputs' must be a non-empty list of tensors")
    return [
        _tensor(item, memoryview(b"")) for item in _checked_inputs(inputs_doc, 0, Budget(limit))
    ]


def _checked_inputs(inputs_doc: list[Any], binary_bytes: int, budget: Budget) -> list[_Input]:
    checked: list[_Input] = []
    offset = 0
    for index, item in enumerate(inputs_doc):
        if not isinstance(item, dict):
            raise InvalidInput(f"inputs[{index}] must be an object")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidInput(f"inputs[{index}].name must be a non-empty string")
        where = f"input {name!r}"
        datatype, shape = datatype_and_shape(item, where)
        given = item.get("parameters")
        params = {} if given is None else parameters(given, f"{where} parameters")
        size = binary_size(params, where)
        params.pop("binary_data_size", None)
        count = budget.charge(where, shape, datatype)
        binary: slice | None = None
        data = item.get("data")
        if size is not None:
            if offset + size > binary_bytes:
                raise InvalidInput(
                    f"{where}: binary_data_size is {size} but only {binary_bytes - offset} "
                    "bytes of binary data remain"
                )
            binary = slice(offset, offset + size)
            offset += size
        elif not isinstance(data, list):
            raise InvalidInput(f"{where} has neither 'data' nor parameters.binary_data_size")
        elif (not data or not isinstance(data[0], list)) and len(data) != count:
            raise InvalidInput(
                f"{where}: shape {list(shape)} needs {count} values, data has {len(data)}"
            )
        checked.append((name, where, datatype, shape, count, params or None, data, binary))
    if offset != binary_bytes:
        raise InvalidInput(
            f"{binary_bytes - offset} bytes of binary data follow the JSON that no input claims"
        )
    return checked


def _tensor(item: _Input, tail: memoryview) -> Tensor:
    name, where, datatype, shape, count, params, values, binary = item
    if binary is not None:
        data = tensor_data(tail[binary], datatype, shape, where, "binary data")
    else:
        data = data_from_json(values, datatype, shape, count, where)
    return Tensor(name, datatype, data, params)


def requested_outputs(value: Any) -> list[RequestedOutput]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput("'outputs' must be a list")
    requested: list[RequestedOutput] = []
    for index, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InvalidInput(f"outputs[{index}] must be an object with a name")
        params = parameters(item.get("parameters"), f"outputs[{index}].parameters")
        binary = params.get("binary_data")
        if binary is not None and not isinstance(binary, bool):
            raise InvalidInput(f"outputs[{index}].parameters.binary_data must be true or false")
        requested.append(RequestedOutput(item["name"], binary))
    return requested
