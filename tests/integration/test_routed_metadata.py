"""Requests that need metadata to be decoded (TF Serving JSON to a TF Serving gRPC variant, TF
JSON in a TorchServe body) are typed with the routed variant's metadata only: a sibling variant
on a real TCP server that accepts and never answers, at weight 0, does not slow them down."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import numpy as np
import pytest

from deploy.local.stack import StackPorts
from gateway.metadata import FETCH_TIMEOUT_S
from tests.support.faults import hung_server
from tests.support.http import DIGITS, call
from tests.support.stack import backends_config, gateway_config, running_gateway

pytestmark = pytest.mark.stack

ROWS = DIGITS.inputs[:8]
HUNG_TIMEOUT_S = 10  # what a request would wait if it asked the hung sibling
FAST_S = 1.5  # a real request here takes milliseconds; well below FETCH_TIMEOUT_S and the above


@pytest.fixture(scope="module")
def url(backends: StackPorts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with hung_server() as port:
        hung = f"http://127.0.0.1:{port}"
        stuck = {"kind": "torchserve", "inference": hung, "management": hung,
                 "timeout_s": HUNG_TIMEOUT_S}  # fmt: skip
        variants = [
            {"name": "tf-v1", "backend": "tfserving", "version": 1, "weight": 1},
            {"name": "stuck-v1", "backend": "stuck", "model": "digits", "version": 1, "weight": 0},
        ]
        config = gateway_config(
            backends,
            models={"digits": {"variants": variants}},
            backends=backends_config(backends, stuck=stuck),
        )
        with running_gateway(tmp_path_factory.mktemp("routed-metadata"), config) as base:
            yield base


def timed(url: str, body: bytes, **headers: str) -> tuple[float, dict]:
    started = time.monotonic()
    reply = call(url, body, {"content-type": "application/json", **headers})
    elapsed = time.monotonic() - started
    assert reply.status == 200, reply.body
    assert reply.headers["x-gateway-variant"] == "tf-v1"
    return elapsed, reply.json()


def test_tf_rest_predict_is_typed_by_the_routed_variant_alone(url):
    body = json.dumps({"instances": ROWS.tolist()}).encode()
    elapsed, doc = timed(f"{url}/v1/models/digits/versions/1:predict", body)
    assert elapsed < FAST_S
    probs = np.asarray(doc["predictions"])
    assert probs.shape == (8, 10)
    assert (probs.argmax(axis=1) == DIGITS.labels[:8]).mean() >= 0.75


def test_torchserve_body_with_tf_json_is_typed_by_the_routed_variant_alone(url):
    body = json.dumps({"inputs": {"input": ROWS.tolist()}}).encode()
    elapsed, doc = timed(f"{url}/predictions/digits/1", body)
    assert elapsed < FAST_S
    assert doc["outputs"][0]["shape"] == [8, 10]


def test_metadata_endpoint_waits_for_the_hung_variant_once(url):
    started = time.monotonic()
    first = call(f"{url}/v2/models/digits")
    first_s = time.monotonic() - started
    assert first.status == 200, first.body
    assert first.json()["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}]
    assert {v["name"]: v["ready"] for v in first.json()["variants"]} == {
        "tf-v1": True,
        "stuck-v1": False,
    }
    assert first_s < FETCH_TIMEOUT_S + FAST_S
    started = time.monotonic()
    again = call(f"{url}/v2/models/digits")  # the failure is remembered for a moment
    assert again.status == 200
    assert time.monotonic() - started < FAST_S
