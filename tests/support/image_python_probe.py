"""Runs under the TorchServe image's Python (3.9), not the venv's: drives ``digits_protocol``'s
envelope with TorchServe's own ``ts.context.Context`` the way a worker does, and prints one JSON
report on stdout for the test to judge. Standard library, numpy and ``ts`` only.
"""

from __future__ import annotations

import json
import py_compile
import sys
from typing import Any

import numpy as np
from digits_protocol import DigitsEnvelope, describe  # type: ignore[import-not-found]
from ts.context import Context, RequestProcessor
from ts.utils.util import PredictionException

MANIFEST = {"model": {"modelName": "digits", "modelVersion": "1"}}


def predict(data, context):
    # The model's stand-in: a deterministic function of the validated [N, 64] input.
    values = np.asarray(data[0]["data"], dtype=np.float32).reshape(-1, 64)
    scores = values[:, :10] + 1.0
    return [("probabilities", (scores / scores.sum(axis=1, keepdims=True)).astype(np.float32))]


def run(row):
    context = Context("digits", ".", MANIFEST, 1, None, "0.12.0")
    context.request_ids = {0: "req-0"}
    context.request_processor = [RequestProcessor({})]
    envelope = DigitsEnvelope(predict)
    try:
        body = envelope.handle([row], context)[0]
    except PredictionException as error:
        return {"status": error.error_code, "message": error.message}
    return {
        "status": 200,
        "content_type": context.get_response_content_type(0),
        "body": json.loads(body),
    }


def main():
    for path in sys.argv[1:]:
        py_compile.compile(path, doraise=True)
    pixels = [float(i % 17) / 16 for i in range(128)]
    request: dict[str, Any] = {
        "id": "r1",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 64], "data": pixels}],
    }
    cases: dict[str, dict[str, Any]] = {
        "rest": {"body": request},
        "grpc": {"data": json.dumps(request).encode()},
        "grpc_bytearray": {"data": bytearray(json.dumps(request).encode())},
        "not_utf8": {"data": b"\xff\xfe"},
        "not_json": {"body": "{"},
        "wrong_name": {"body": {"inputs": [dict(request["inputs"][0], name="x")]}},
        "wrong_shape": {"body": {"inputs": [dict(request["inputs"][0], shape=[2, 63])]}},
        "too_few_values": {"body": {"inputs": [dict(request["inputs"][0], data=[0.0])]}},
        "no_body": {},
    }
    report = {name: run(row) for name, row in cases.items()}
    report["describe"] = json.loads(describe(MANIFEST))
    report["python"] = list(sys.version_info[:2])
    print(json.dumps(report))


if __name__ == "__main__":
    main()
