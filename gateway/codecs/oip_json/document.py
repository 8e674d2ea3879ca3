"""The JSON document of an OIP REST body: splitting it from binary data, and its typed fields."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.codecs.limits import MAX_RANK, brief, rank_error
from gateway.errors import InvalidInput
from gateway.inference import DATATYPES, Parameters


def split(body: bytes, json_length: int | None) -> tuple[bytes | memoryview, memoryview]:
    """The JSON part and the binary part (``Inference-Header-Content-Length`` bytes of JSON)."""
    if json_length is None:
        return body, memoryview(b"")
    if not 0 < json_length <= len(body):
        raise InvalidInput(
            f"Inference-Header-Content-Length is {json_length} but the body has {len(body)} bytes"
        )
    view = memoryview(body)
    return view[:json_length], view[json_length:]


def load_object(raw: bytes | memoryview, what: str) -> dict[str, Any]:
    """Parse JSON (orjson refuses nesting deeper than 1024) that must be an object."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise InvalidInput(f"{what} is not valid JSON: {error}") from None
    if not isinstance(doc, dict):
        raise InvalidInput(f"{what} must be a JSON object")
    return doc


def datatype_and_shape(item: dict[str, Any], where: str) -> tuple[str, tuple[int, ...]]:
    """The datatype and checked shape of a parsed tensor entry (JSON holds exact ``int``s,
    ``list``s and ``str``s: ``type() is`` tests them fastest, and tells ``bool`` from ``int``)."""
    datatype = item.get("datatype")
    if type(datatype) is not str or datatype not in DATATYPES:
        raise InvalidInput(
            f"{where}: unknown datatype {brief(datatype)} (one of {', '.join(DATATYPES)})"
        )
    shape = item.get("shape")
    if type(shape) is list:
        for size in shape:
            if type(size) is not int or size < 0:
                break
        else:
            if len(shape) > MAX_RANK:
                raise rank_error(where, len(shape))
            return datatype, tuple(shape)
    raise InvalidInput(
        f"{where}: shape must be a list of non-negative integers, got {brief(shape)}"
    )


def parameters(value: Any, what: str) -> Parameters:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a JSON object")
    return dict(value)


def optional_str(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string")
    return value


def binary_size(params: Parameters, where: str) -> int | None:
    size = params.get("binary_data_size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise InvalidInput(f"{where}: binary_data_size must be a non-negative integer")
    return size
