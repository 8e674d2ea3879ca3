"""Small synchronous HTTP helpers over real sockets (stdlib only, so nothing is mocked)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import numpy as np

from model_store.digits import load_test_set


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    method: str | None = None,
) -> Reply:
    request = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return Reply(
                response.status,
                {k.lower(): v for k, v in response.headers.items()},
                response.read(),
            )
    except urllib.error.HTTPError as error:
        return Reply(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())


def infer_body(rows: np.ndarray, **extra: Any) -> bytes:
    doc = {
        "inputs": [
            {
                "name": "input",
                "datatype": "FP32",
                "shape": list(rows.shape),
                "data": rows.ravel().tolist(),
            }
        ],
        **extra,
    }
    return json.dumps(doc).encode()


def infer(
    base: str, rows: np.ndarray, path: str = "/v2/models/digits/infer", **headers: str
) -> Reply:
    return call(base + path, infer_body(rows), {"content-type": "application/json", **headers})


def probabilities(reply: Reply) -> np.ndarray:
    output = reply.json()["outputs"][0]
    return np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])


DIGITS = load_test_set()
