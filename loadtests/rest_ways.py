"""The four REST ways in, as data: where each posts, how it encodes digits, how it reads answers.

A ``RestWay`` is what ``users.DigitsRestUser`` needs to speak one protocol; no Locust here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from loadtests import payloads
from loadtests.endpoints import (
    MODEL,
    OIP_REST_BINARY,
    OIP_REST_JSON,
    TFS_REST,
    TORCHSERVE_REST,
    Endpoint,
)
from model_store.digits import FloatArray

JSON = {"content-type": "application/json"}


@dataclass(frozen=True)
class RestWay:
    endpoint: Endpoint
    path: Callable[[str], str]  # the model version ("" for none) -> the URL path
    encode: Callable[[FloatArray], tuple[bytes, dict[str, str]]]  # rows -> body, headers
    # the answer's body and its Inference-Header-Content-Length (if any) -> probabilities and
    # the version the answer names (None if the protocol names none)
    decode: Callable[[bytes, int | None], tuple[FloatArray, str | None]]


def _oip_path(version: str) -> str:
    return (
        f"/v2/models/{MODEL}/versions/{version}/infer" if version else f"/v2/models/{MODEL}/infer"
    )


def _tfs_path(version: str) -> str:
    return (
        f"/v1/models/{MODEL}/versions/{version}:predict"
        if version
        else f"/v1/models/{MODEL}:predict"
    )


def _torchserve_path(version: str) -> str:
    return f"/predictions/{MODEL}/{version}" if version else f"/predictions/{MODEL}"


def _json_body(rows: FloatArray) -> tuple[bytes, dict[str, str]]:
    return payloads.oip_json_body(rows), JSON


def _binary_body(rows: FloatArray) -> tuple[bytes, dict[str, str]]:
    body, header_length = payloads.oip_binary_body(rows)
    headers = {
        "content-type": "application/octet-stream",
        payloads.BINARY_HEADER: str(header_length),
    }
    return body, headers


def _tfs_body(rows: FloatArray) -> tuple[bytes, dict[str, str]]:
    return payloads.tfs_rest_body(rows), JSON


def _json_answer(body: bytes, _header_length: int | None) -> tuple[FloatArray, str | None]:
    return payloads.oip_answer(body)


def _tfs_answer(body: bytes, _header_length: int | None) -> tuple[FloatArray, str | None]:
    return payloads.tfs_rest_answer(body)


OIP_JSON_WAY = RestWay(OIP_REST_JSON, _oip_path, _json_body, _json_answer)
OIP_BINARY_WAY = RestWay(OIP_REST_BINARY, _oip_path, _binary_body, payloads.oip_answer)
TFS_WAY = RestWay(TFS_REST, _tfs_path, _tfs_body, _tfs_answer)
# TorchServe's kservev2 handler reads and writes OIP JSON.
TORCHSERVE_WAY = RestWay(TORCHSERVE_REST, _torchserve_path, _json_body, _json_answer)
