"""OIP REST bodies the gateway writes for a backend, each within the byte limit it accepts."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.codecs.oip_json.values import json_data
from gateway.codecs.oip_raw import tensor_bytes
from gateway.codecs.upstream_limit import NUMPY, BodyBudget
from gateway.inference import InferRequest, Tensor


def encode_request(request: InferRequest, inputs: list[Tensor], limit: int) -> bytes:
    """OIP JSON for a backend that reads it (TorchServe's kservev2 envelope): no binary part."""
    budget = BodyBudget(limit, "the request as OIP JSON for the backend")
    doc: dict[str, Any] = {}
    if request.id is not None:
        doc["id"] = request.id
    doc["inputs"] = [
        {
            "name": tensor.name,
            "shape": list(tensor.shape),
            "datatype": tensor.datatype,
            "data": json_data(tensor, budget),
        }
        for tensor in inputs
    ]
    if request.outputs:
        doc["outputs"] = [{"name": wanted.name} for wanted in request.outputs]
    return budget.finish(orjson.dumps(doc, option=NUMPY))


def encode_binary_request(
    request: InferRequest, inputs: list[Tensor], limit: int
) -> tuple[bytes, int]:
    """OIP REST for an OIP backend, every input in the binary extension; also the JSON length."""
    budget = BodyBudget(limit, "the request in the binary tensor extension for the backend")
    entries: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for tensor in inputs:
        budget.spend_raw(tensor, 4)
        blob = tensor_bytes(tensor)
        blobs.append(blob)
        entries.append(
            {
                "name": tensor.name,
                "shape": list(tensor.shape),
                "datatype": tensor.datatype,
                "parameters": {"binary_data_size": len(blob)},
            }
        )
    doc: dict[str, Any] = {}
    if request.id is not None:
        doc["id"] = request.id
    if request.parameters:
        doc["parameters"] = request.parameters
    doc["inputs"] = entries
    if request.outputs:
        doc["outputs"] = [
            {"name": wanted.name, "parameters": {"binary_data": True}} for wanted in request.outputs
        ]
    else:
        doc.setdefault("parameters", {})["binary_data_output"] = True
    head = orjson.dumps(doc)
    budget.check(len(head) + sum(len(blob) for blob in blobs))
    return b"".join([head, *blobs]), len(head)
