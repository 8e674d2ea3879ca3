"""A predict request's JSON inputs as arrays: rows (``instances``) or columns (``inputs``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from tensorflow.core.protobuf import meta_graph_pb2

from deploy.local.tfserving_standin.errors import ServingError, invalid
from deploy.local.tfserving_standin.formatting import shape_text
from deploy.local.tfserving_standin.json_tensors import flatten, json_to_array, to_array
from deploy.local.tfserving_standin.json_values import is_object, json_text

InputInfos = Mapping[str, meta_graph_pb2.TensorInfo]
Arrays = dict[str, np.ndarray[Any, Any]]


class _Instances:
    """Accumulates row-format instances into one batch per input name."""

    def __init__(self, infos: InputInfos) -> None:
        self.infos = infos
        self.values: dict[str, list[Any]] = {}
        self.shapes: dict[str, list[int]] = {}

    def add(self, name: str, item: Any) -> None:
        if name not in self.infos:
            raise invalid(f"JSON object: does not have named input: {name}")
        dims, values = flatten(item, self.infos[name].dtype)
        if name not in self.shapes:
            self.shapes[name] = dims
            self.values[name] = values
            return
        expected = self.shapes[name]
        if len(values) != math.prod(expected):
            raise invalid(f"Expecting tensor size: {math.prod(expected)} but got: {len(values)}")
        if dims != expected:
            raise invalid(f"Expecting shape {shape_text(expected)} but got: {shape_text(dims)}")
        self.values[name].extend(values)

    def arrays(self, count: int) -> Arrays:
        return {
            name: to_array(values, [count, *self.shapes[name]], self.infos[name].dtype)
            for name, values in self.values.items()
        }


def _element_error(where: str, exc: ServingError) -> ServingError:
    return invalid(
        f"Failed to process element: {where} of 'instances' list. Error: {exc.status_text()}"
    )


def _add_object_instance(batch: _Instances, index: int, element: Any, names: list[str]) -> None:
    if not is_object(element):
        raise invalid(f"Expecting object but got list at item {index} of input list")
    for key, item in element.items():
        try:
            batch.add(key, item)
        except ServingError as exc:
            raise _element_error(f"{index} key: {key}", exc) from exc
    if sorted(element) != names:
        raise invalid(
            f"Failed to process element: {index} of 'instances' list. "
            f"JSON object: {json_text(element)} must only have keys: {','.join(names)}"
        )


def instances_to_arrays(instances: list[Any], infos: InputInfos) -> Arrays:
    names = sorted(infos)
    if not isinstance(instances[0], dict) and len(names) > 1:
        raise invalid(
            "instances is a plain list, but expecting list of objects as multiple input "
            "tensors required as per tensorinfo_map"
        )
    objects = is_object(instances[0])
    batch = _Instances(infos)
    for index, element in enumerate(instances):
        if objects:
            _add_object_instance(batch, index, element, names)
            continue
        if is_object(element):
            raise invalid(f"Expecting value/list but got object at item {index} of input list")
        try:
            batch.add(names[0], element)
        except ServingError as exc:
            raise _element_error(str(index), exc) from exc
    return batch.arrays(len(instances))


def columns_to_arrays(value: Any, infos: InputInfos) -> Arrays:
    names = sorted(infos)
    if not is_object(value):
        if len(names) > 1:
            raise invalid(
                "inputs is a plain value/list, but expecting an object as multiple input "
                "tensors required as per tensorinfo_map"
            )
        return {names[0]: json_to_array(value, infos[names[0]].dtype)}
    arrays = {}
    for name in names:
        if name not in value:
            raise invalid(f"Missing named input: {name} in 'inputs' object.")
        arrays[name] = json_to_array(value[name], infos[name].dtype)
    return arrays


def json_inputs(doc: dict[str, Any], infos: InputInfos) -> tuple[Arrays, bool]:
    """The request's input arrays, and whether it used the row ("instances") format."""
    if "instances" in doc and "inputs" in doc:
        raise invalid(
            f"JSON Value: {json_text(doc)} Not formatted correctly expecting only one of "
            "'inputs' or 'instances' keys to exist "
        )
    if "instances" in doc:
        instances = doc["instances"]
        if not isinstance(instances, list):
            raise invalid(f"JSON Value: {json_text(doc)} Excepting 'instances' to be an list/array")
        if not instances:
            raise invalid(f"JSON Value: {json_text(doc)} No values in 'instances' array")
        return instances_to_arrays(instances, infos), True
    if "inputs" in doc:
        return columns_to_arrays(doc["inputs"], infos), False
    raise invalid("Missing 'inputs' or 'instances' key")
