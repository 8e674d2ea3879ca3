"""Response bodies of the REST API: tensors as nested JSON, written as TF Serving writes them."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import classification_pb2, regression_pb2

from deploy.local.tfserving_standin.errors import invalid
from deploy.local.tfserving_standin.formatting import dtype_name
from deploy.local.tfserving_standin.json_values import INT_RANGES
from deploy.local.tfserving_standin.runtime import OutputTensor


def format_decimal(value: float, single: bool) -> str:
    """A float as TF Serving writes it: six significant digits unless that does not round-trip."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    text = f"{value:g}"
    parsed = float(np.float32(text)) if single else float(text)
    if parsed != value:
        text = f"{value:.9g}" if single else f"{value:.17g}"
    if "." not in text and "e" not in text:
        text += ".0"
    return text


def json_tokens(name: str, tensor: OutputTensor) -> list[str]:
    """Each value of the tensor as JSON text, in row-major order."""
    flat = tensor.value.ravel().tolist()
    dtype = tensor.dtype
    if dtype in (types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE):
        single = dtype == types_pb2.DT_FLOAT
        return [format_decimal(v, single) for v in flat]
    if dtype in INT_RANGES:
        return [str(int(v)) for v in flat]
    if dtype == types_pb2.DT_BOOL:
        return ["true" if v else "false" for v in flat]
    if dtype == types_pb2.DT_STRING:
        # Only outputs named "*_bytes" are binary: they go out base64-encoded.
        if name.endswith("_bytes"):
            return ['{"b64": "' + base64.b64encode(v).decode("ascii") + '"}' for v in flat]
        return [json.dumps(bytes(v).decode("utf-8", "replace")) for v in flat]
    raise invalid(f"Failed to write JSON value for tensor type: {dtype_name(dtype)}")


def nest(tokens: Sequence[str], dims: Sequence[int]) -> str:
    """Row-major values as nested JSON lists of these dimensions (a bare value for none)."""
    items = list(tokens)
    for depth in range(len(dims) - 1, -1, -1):
        size = dims[depth]
        items = [
            "[" + ",".join(items[g * size : (g + 1) * size]) + "]"
            for g in range(math.prod(dims[:depth]))
        ]
    return items[0]


def _json_list(items: Iterable[str]) -> str:
    return "[" + ",".join(items) + "]"


def _named(values: Mapping[str, str]) -> str:
    """Several outputs as one JSON object by name."""
    return "{" + ",".join(f"{json.dumps(n)}: {v}" for n, v in values.items()) + "}"


def _document(key: str, value: str) -> str:
    return "{\n    " + json.dumps(key) + ": " + value + "\n}"


def _row_items(outputs: Mapping[str, OutputTensor]) -> tuple[int, dict[str, list[str]]]:
    batch = 0
    rows: dict[str, list[str]] = {}
    for name in sorted(outputs):
        dims = outputs[name].value.shape
        if not dims:
            raise invalid(f"Tensor name: {name} has no shape information ")
        if dims[0] < 1:
            raise invalid(f"Tensor name: {name} has invalid batch size: {dims[0]}")
        if batch and dims[0] != batch:
            raise invalid(
                f"Tensor name: {name} has inconsistent batch size: {dims[0]} expecting: {batch}"
            )
        batch = dims[0]
        tokens = json_tokens(name, outputs[name])
        per_row = math.prod(dims[1:])
        rows[name] = [nest(tokens[i * per_row : (i + 1) * per_row], dims[1:]) for i in range(batch)]
    return batch, rows


def render_predictions(outputs: Mapping[str, OutputTensor], row_format: bool) -> str:
    """The predict response body: one output is written bare, several as an object by name."""
    if not outputs:
        raise invalid("Cannot convert empty tensor map to JSON")
    if row_format:
        batch, rows = _row_items(outputs)
        if len(rows) == 1:
            items = next(iter(rows.values()))
        else:
            items = [_named({n: rows[n][i] for n in rows}) for i in range(batch)]
        return _document("predictions", _json_list(items))
    columns = {
        name: nest(json_tokens(name, outputs[name]), outputs[name].value.shape)
        for name in sorted(outputs)
    }
    body = next(iter(columns.values())) if len(columns) == 1 else _named(columns)
    return _document("outputs", body)


def render_classifications(result: classification_pb2.ClassificationResult) -> str:
    rows = [
        _json_list(
            f"[{json.dumps(c.label)}, {format_decimal(c.score, True)}]"
            for c in classifications.classes
        )
        for classifications in result.classifications
    ]
    return _document("results", _json_list(rows))


def render_regressions(result: regression_pb2.RegressionResult) -> str:
    return _document(
        "results", _json_list(format_decimal(r.value, True) for r in result.regressions)
    )
