"""TF Serving REST ``:predict`` bodies in the columnar format (``inputs`` -> ``outputs``).

When a signature answers with one output, TF Serving renders ``outputs`` as that tensor's bare
value, not as a map; the output's name then comes from the model's metadata. DT_STRING values
travel as ``{"b64": ...}`` objects.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import orjson

from gateway.errors import BackendError
from gateway.inference import DATATYPES, InferRequest, ModelMetadata, Tensor


def encode_predict(request: InferRequest, signature_name: str) -> bytes:
    inputs: dict[str, Any] = {}
    for tensor in request.inputs:
        if tensor.datatype == "BYTES":
            inputs[tensor.name] = _b64_nested(tensor.data)
        else:
            inputs[tensor.name] = tensor.data
    doc: dict[str, Any] = {"signature_name": signature_name, "inputs": inputs}
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)


def decode_predict(
    body: bytes, metadata: ModelMetadata, wanted: list[str], backend: str
) -> list[Tensor]:
    try:
        doc = orjson.loads(body)
        outputs = doc["outputs"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise BackendError(
            f"backend {backend!r} sent a :predict response without outputs"
        ) from None
    specs = {spec.name: spec for spec in metadata.outputs}
    names = wanted or list(specs)
    if isinstance(outputs, dict) and "b64" not in outputs and set(outputs) <= set(specs):
        values = outputs
    elif len(names) == 1:
        values = {names[0]: outputs}
    else:
        raise BackendError(f"backend {backend!r}: cannot tell which outputs {names} were returned")
    tensors = []
    for name in sorted(values):
        spec = specs.get(name)
        if spec is None or spec.datatype not in DATATYPES:
            raise BackendError(f"backend {backend!r} returned output {name!r} not in its metadata")
        tensors.append(Tensor(name, spec.datatype, _array(values[name], spec.datatype, backend)))
    return tensors


def _array(value: Any, datatype: str, backend: str) -> np.ndarray[Any, Any]:
    if datatype == "BYTES":
        array = np.asarray(value, dtype=object)
        flat = np.empty(array.size, dtype=object)
        flat[:] = [_unb64(item) for item in array.ravel()]
        return flat.reshape(array.shape)
    try:
        return np.asarray(value, dtype=DATATYPES[datatype])
    except (ValueError, TypeError):
        raise BackendError(f"backend {backend!r} returned values that are not {datatype}") from None


def _b64_nested(data: np.ndarray[Any, Any]) -> Any:
    if data.ndim == 0:
        item = data.item()
        raw = item if isinstance(item, bytes) else str(item).encode()
        return {"b64": base64.b64encode(raw).decode()}
    return [_b64_nested(row) for row in data]


def _unb64(item: Any) -> bytes:
    if isinstance(item, dict) and "b64" in item:
        return base64.b64decode(item["b64"])
    return str(item).encode()
