"""The request every scenario sends: one test digit as an OIP JSON body."""

from __future__ import annotations

import json

from model_store.digits import load_test_set

INFER_HEADERS = {"content-type": "application/json"}


def digit_body(index: int = 0) -> bytes:
    digits = load_test_set()
    row = digits.inputs[index % len(digits)]
    doc = {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 64], "data": row.tolist()}]
    }
    return json.dumps(doc).encode()


def infer_path(model: str) -> str:
    return f"/v2/models/{model}/infer"
