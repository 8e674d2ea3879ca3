"""The ``context`` and ``examples`` of a REST classify or regress request as tf.Examples."""

from __future__ import annotations

from typing import Any

from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import input_pb2

from deploy.local.tfserving_standin.errors import ServingError, invalid
from deploy.local.tfserving_standin.json_values import (
    b64_decode,
    float_leaf,
    is_object,
    json_text,
    json_type,
)


def _feature_kind_error(name: str, kind: str | None) -> ServingError:
    found = {"bytes_list": "bytes", "float_list": "float", "int64_list": "int64"}
    expected = found.get(kind or "", "UNKNOWN")
    return invalid(f"Unexpected element type in feature: {name} expecting type: {expected}")


def _add_feature_value(value: Any, name: str, feature: Any) -> None:
    """Append one JSON value to a tf.train.Feature: bools and ints are int64, strings bytes."""
    if value is None or isinstance(value, list) or is_object(value):
        raise invalid(f"Feature: {name} has element with unexpected JSON type: {json_type(value)}")
    item: int | float | bytes
    if isinstance(value, bool | int):
        kind, item = "int64_list", int(value)
        if item > 2**63 - 1:
            raise invalid(f"Feature: {name} has uint64 element. Only int64 is supported.")
    elif isinstance(value, float):
        kind, item = "float_list", float_leaf(value, types_pb2.DT_FLOAT)
    else:
        kind = "bytes_list"
        item = b64_decode(value) if isinstance(value, dict) else value.encode()
    current = feature.WhichOneof("kind")
    if current not in (None, kind):
        raise _feature_kind_error(name, current)
    getattr(feature, kind).value.append(item)


def _fill_example(value: Any, example: Any) -> None:
    if not isinstance(value, dict):
        raise invalid(f"Example must be JSON object but got JSON {json_type(value)}")
    for name, content in value.items():
        feature = example.features.feature[name]
        for item in content if isinstance(content, list) else [content]:
            _add_feature_value(item, name, feature)


def json_examples(doc: dict[str, Any]) -> input_pb2.Input:
    """The ``context`` and ``examples`` of a classify or regress request as an Input proto."""
    examples_input = input_pb2.Input()
    has_context = "context" in doc
    if has_context:
        _fill_example(doc["context"], examples_input.example_list_with_context.context)
    examples = doc.get("examples")
    if examples is None:
        raise invalid(
            f"JSON Value: {json_text(doc)} When method is classify, key 'examples' is expected "
            "and was not found"
        )
    if not isinstance(examples, list):
        raise invalid(
            f"JSON Value: {json_text(doc)} Expecting 'examples' value to be an list/array"
        )
    if not examples:
        raise invalid(f"JSON Value: {json_text(doc)} 'examples' value is an empty array")
    target = (
        examples_input.example_list_with_context.examples
        if has_context
        else examples_input.example_list.examples
    )
    for item in examples:
        _fill_example(item, target.add())
    return examples_input
