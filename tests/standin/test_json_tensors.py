"""The stand-in's REST JSON tensors: nesting deeper than it can hold is the client's error."""

from __future__ import annotations

import pytest
from tensorflow.core.framework import types_pb2

from deploy.local.tfserving_standin.errors import ServingError
from deploy.local.tfserving_standin.json_tensors import MAX_RANK, json_to_array


def nested(depth: int) -> list[object]:
    value: list[object] = [0.5]
    for _ in range(depth - 1):
        value = [value]
    return value


def test_nesting_up_to_the_rank_limit_is_a_tensor():
    assert json_to_array(nested(MAX_RANK), types_pb2.DT_FLOAT).shape == (1,) * MAX_RANK


def test_deeper_nesting_is_invalid_argument():
    with pytest.raises(ServingError, match="nested 900 lists deep") as refused:
        json_to_array(nested(900), types_pb2.DT_FLOAT)
    assert refused.value.code.name == "INVALID_ARGUMENT"
