"""TF Serving REST ``:predict`` bodies, row (``instances`` -> ``predictions``) and columnar
(``inputs`` -> ``outputs``).

The rules are TF Serving's (its REST API guide): a signature with one input may take bare values
instead of an object by input name; one output is rendered as its bare value, not as an object;
DT_STRING values travel as ``{"b64": ...}`` objects (responses use them for output names ending
in ``_bytes``). JSON carries no dtypes, so the model's metadata supplies names and dtypes.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from gateway.codecs.json_numbers import as_datatype
from gateway.codecs.limits import MAX_RANK, Budget, checked_shape
from gateway.codecs.upstream_limit import NUMPY, BodyBudget, bytes_lower_bound, json_numbers
from gateway.errors import BackendError, InvalidInput
from gateway.inference import DATATYPES, ModelMetadata, Tensor, TensorSpec


@dataclass(slots=True)
class PredictBody:
    """A decoded ``:predict`` request: its tensors and how the client wants the answer."""

    inputs: list[Tensor]
    row_format: bool
    signature_name: str | None


def load_body(body: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InvalidInput(f"JSON Parse error: {error}") from None
    if not isinstance(doc, dict):
        raise InvalidInput("JSON Value: not an object; expected an object")
    return doc


def signature_of(doc: dict[str, Any]) -> str | None:
    name = doc.get("signature_name")
    if name is not None and not isinstance(name, str):
        raise InvalidInput("'signature_name' must be a string")
    return name


def decode_predict_request(doc: dict[str, Any], metadata: ModelMetadata, limit: int) -> PredictBody:
    """Tensors of a client's parsed ``:predict`` body, typed by the routed model's metadata;
    their decoded size may not exceed ``limit``."""
    signature = signature_of(doc)
    has_rows, has_columns = "instances" in doc, "inputs" in doc
    if not has_rows and not has_columns:
        raise InvalidInput("Missing 'inputs' or 'instances' key")
    if has_rows and has_columns:
        raise InvalidInput("Not formatted correctly: both 'instances' and 'inputs' given")
    specs = {spec.name: spec for spec in metadata.inputs}
    values = _rows_to_columns(doc["instances"], specs) if has_rows else _named(doc["inputs"], specs)
    budget = Budget(limit)
    tensors = [_tensor(name, value, specs[name], budget) for name, value in values.items()]
    return PredictBody(tensors, has_rows, signature)


def _named(value: Any, specs: dict[str, TensorSpec]) -> dict[str, Any]:
    if isinstance(value, dict) and "b64" not in value:
        for name in value:
            if name not in specs:
                raise InvalidInput(
                    f"input tensor alias not found in signature: {name}. Inputs expected to be "
                    f"in the set {{{','.join(sorted(specs))}}}."
                )
        return value
    if len(specs) != 1:
        raise InvalidInput(
            f"the model takes {len(specs)} inputs ({', '.join(sorted(specs))}): "
            "name each one in an object"
        )
    return {next(iter(specs)): value}


def _rows_to_columns(instances: Any, specs: dict[str, TensorSpec]) -> dict[str, Any]:
    if not isinstance(instances, list) or not instances:
        raise InvalidInput("'instances' must be a non-empty list")
    rows = [_named(row, specs) for row in instances]
    names = list(rows[0])
    for row in rows:
        if list(row) != names:
            raise InvalidInput("every instance must name the same inputs")
    return {name: [row[name] for row in rows] for name in names}


def _tensor(name: str, value: Any, spec: TensorSpec, budget: Budget | None) -> Tensor:
    """JSON values typed by ``spec``; JSON has no shapes, so the values' nesting is checked and
    charged once numpy has built the array, before it is converted to the spec's dtype."""
    where = f"input {name!r}"
    if spec.datatype == "BYTES":
        array = _bytes_array(value, where)
        _charge(where, array, "BYTES", budget)
        return Tensor(name, "BYTES", array)
    if spec.datatype not in DATATYPES:
        raise InvalidInput(f"{where} has dtype {spec.datatype}, which JSON cannot carry")
    try:
        raw = np.asarray(value)
    except ValueError:  # ragged, or nested deeper than numpy's dimensions
        raise InvalidInput(f"{where}: values must form a rectangular array") from None
    if raw.dtype.kind not in "biuf":
        raise InvalidInput(f"{where}: expected numbers for {spec.datatype}")
    _charge(where, raw, spec.datatype, budget)
    return Tensor(name, spec.datatype, as_datatype(raw, spec.datatype, where))


def _charge(where: str, array: np.ndarray[Any, Any], datatype: str, budget: Budget | None) -> None:
    shape = checked_shape(where, array.shape)
    if budget is not None:
        budget.charge(where, shape, datatype)


def _bytes_array(value: Any, where: str) -> np.ndarray[Any, Any]:
    """Nested lists of strings and ``{"b64": ...}`` objects -> an object array of bytes, walked
    without recursion and no deeper than a tensor may be."""

    def leaf(item: Any) -> bytes:
        if isinstance(item, dict) and "b64" in item:
            try:
                return base64.b64decode(item["b64"], validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise InvalidInput(f"{where}: a 'b64' value is not valid base64") from None
        if isinstance(item, str):
            return item.encode()
        raise InvalidInput(f'{where}: string inputs take strings or {{"b64": ...}} objects')

    if not isinstance(value, list):
        scalar = np.empty((), dtype=object)
        scalar[()] = leaf(value)
        return scalar
    # A rectangular array has all its values in lists of one depth, and no list deeper.
    root: list[Any] = []
    depths: set[int] = set()  # of the lists that hold values
    deepest = 1
    pending: list[tuple[list[Any], list[Any], int]] = [(value, root, 1)]
    while pending:
        source, target, depth = pending.pop()
        if depth > MAX_RANK:
            raise InvalidInput(f"{where}: values are nested deeper than {MAX_RANK} dimensions")
        deepest = max(deepest, depth)
        for item in source:
            if isinstance(item, list):
                child: list[Any] = []
                target.append(child)
                pending.append((item, child, depth + 1))
            else:
                target.append(leaf(item))
                depths.add(depth)
    array: np.ndarray[Any, Any] | None
    try:
        array = np.asarray(root, dtype=object)  # ragged lists may stay lists: caught below
    except ValueError:
        array = None
    # Without any value, lists of lists still have one depth: [[], [[]]] is no array.
    if array is None or array.ndim != deepest or (depths and depths != {deepest}):
        raise InvalidInput(f"{where}: string values must form a rectangular array")
    return array


def encode_predict_request(inputs: list[Tensor], signature_name: str, limit: int) -> bytes:
    """A columnar request for a TF Serving backend, refused past ``limit`` bytes."""
    budget = BodyBudget(limit, "the request as TF Serving JSON for the backend")
    columns: dict[str, Any] = {}
    for tensor in inputs:
        if tensor.datatype == "BYTES":  # b64 is 4/3 as long, in {"b64": ...}
            budget.spend(bytes_lower_bound(tensor.data.flat, 11), tensor.name)
            columns[tensor.name] = _b64_nested(tensor.data)
        else:
            columns[tensor.name] = json_numbers(tensor.data, budget, tensor.name)
    doc = {"signature_name": signature_name, "inputs": columns}
    return budget.finish(orjson.dumps(doc, option=NUMPY))


def encode_predict_response(outputs: list[Tensor], row_format: bool) -> bytes:
    """What TF Serving would answer: ``predictions`` per row, or ``outputs`` per tensor."""
    values = {tensor.name: _json_value(tensor) for tensor in outputs}
    if not row_format:
        only = len(values) == 1
        return orjson.dumps(
            {"outputs": next(iter(values.values())) if only else values}, option=NUMPY
        )
    if len(outputs) == 1:
        return orjson.dumps({"predictions": values[outputs[0].name]}, option=NUMPY)
    batch = {tensor.shape[0] if tensor.shape else 0 for tensor in outputs}
    if len(batch) != 1:
        raise InvalidInput("outputs differ in batch size: send 'inputs' (columnar) instead of rows")
    rows = [{name: value[i] for name, value in values.items()} for i in range(batch.pop())]
    return orjson.dumps({"predictions": rows}, option=NUMPY)


def decode_predict_response(
    body: bytes, metadata: ModelMetadata, wanted: list[str], backend: str
) -> list[Tensor]:
    """A TF Serving backend's ``:predict`` answer, in either format."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BackendError(
            f"backend {backend!r} sent a :predict response that is not JSON"
        ) from None
    specs = {spec.name: spec for spec in metadata.outputs}
    names = wanted or sorted(specs)
    if isinstance(doc, dict) and "outputs" in doc:
        values = _response_values(doc["outputs"], names, specs, backend)
    elif isinstance(doc, dict) and isinstance(doc.get("predictions"), list):
        rows = doc["predictions"]
        if len(names) == 1 and not (rows and isinstance(rows[0], dict) and names[0] in rows[0]):
            values = {names[0]: rows}
        elif all(isinstance(row, dict) and set(names) <= set(row) for row in rows):
            values = {name: [row[name] for row in rows] for name in names}
        else:
            raise BackendError(f"backend {backend!r}: predictions do not name outputs {names}")
    else:
        raise BackendError(f"backend {backend!r} sent a :predict response without outputs")
    tensors = []
    for name in sorted(values):
        spec = specs.get(name)
        if spec is None:
            raise BackendError(f"backend {backend!r} returned output {name!r} not in its metadata")
        try:
            tensors.append(_tensor(name, values[name], spec, None))
        except InvalidInput as error:
            raise BackendError(f"backend {backend!r}: {error.message}") from None
    return tensors


def _response_values(
    outputs: Any, names: list[str], specs: dict[str, TensorSpec], backend: str
) -> dict[str, Any]:
    if isinstance(outputs, dict) and "b64" not in outputs and set(outputs) <= set(specs):
        return outputs
    if len(names) == 1:
        return {names[0]: outputs}
    raise BackendError(f"backend {backend!r}: cannot tell which outputs {names} were returned")


def _json_value(tensor: Tensor) -> Any:
    if tensor.datatype != "BYTES":
        return json_numbers(tensor.data, None, tensor.name)
    as_b64 = tensor.name.endswith("_bytes")
    return _b64_nested(tensor.data) if as_b64 else _text_nested(tensor.data)


def _b64(item: Any) -> dict[str, str]:
    raw = item if isinstance(item, bytes) else str(item).encode()
    return {"b64": base64.b64encode(raw).decode()}


def _text(item: Any) -> str:
    return item.decode(errors="replace") if isinstance(item, bytes) else str(item)


def _b64_nested(data: np.ndarray[Any, Any]) -> Any:
    return _nested(data, _b64)


def _text_nested(data: np.ndarray[Any, Any]) -> Any:
    return _nested(data, _text)


def _nested(data: np.ndarray[Any, Any], convert: Callable[[Any], Any]) -> Any:
    """An object array as nested lists of converted items (iterating a 1-d object array
    yields its items, not 0-d arrays)."""
    if data.ndim == 0:
        return convert(data.item())
    if data.ndim == 1:
        return [convert(item) for item in data]
    return [_nested(row, convert) for row in data]
