"""Errors the HTTP front end answers before any endpoint runs (no such path, a method the path
does not take) and errors of its framework routes come in the protocol of the path: TorchServe's
``{"code", "type", "message"}`` under ``/predictions`` and ``/ping``, ``{"error"}`` elsewhere."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from gateway.app import Gateway
from gateway.config import parse_config
from gateway.errors import Overloaded
from gateway.http.errors import torchserve_error
from tests.support.offline_gateway import offline_config


def replies(requests: list[tuple[str, str]]) -> list[tuple[int, dict[str, object]]]:
    async def scenario() -> list[tuple[int, dict[str, object]]]:
        gateway = Gateway(parse_config(offline_config(grpc=None)))
        transport = httpx.ASGITransport(app=gateway.http_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            answers = [await client.request(method, path) for method, path in requests]
        return [(answer.status_code, answer.json()) for answer in answers]

    return asyncio.run(scenario())


@pytest.mark.parametrize(
    ("method", "path", "status", "kind"),
    [
        ("GET", "/predictions/digits", 404, "ResourceNotFoundException"),
        ("PUT", "/predictions/digits/1/extra", 404, "ResourceNotFoundException"),
        ("DELETE", "/ping", 405, "MethodNotAllowedException"),
    ],
)
def test_torchserve_paths_answer_in_torchserve_shape(method, path, status, kind):
    [(code, body)] = replies([(method, path)])
    assert code == status
    assert (body["code"], body["type"]) == (status, kind)
    assert path in str(body["message"])
    assert method in str(body["message"])


def test_other_paths_answer_in_the_oip_shape():
    answers = replies([("GET", "/nope"), ("DELETE", "/v2/models/digits/infer")])
    assert answers == [
        (404, {"error": "no such endpoint: GET /nope"}),
        (404, {"error": "no such endpoint: DELETE /v2/models/digits/infer"}),
    ]


def test_an_overloaded_torchserve_request_is_503_in_its_shape():
    status, body = torchserve_error(Overloaded("retry shortly"))
    assert status == 503
    assert json.loads(body) == {
        "code": 503,
        "type": "ServiceUnavailableException",
        "message": "retry shortly",
    }
