"""The gateway as a real process in front of real TorchServe and TF Serving (or its stand-in)."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from tests.support.http import DIGITS, call, infer, infer_body, probabilities

pytestmark = pytest.mark.stack

VERSION_OF = {"tf-v1": "1", "torch-v1": "1", "tf-v2": "2", "torch-v2": "2"}


def test_health_and_server_metadata(gateway_url):
    assert call(gateway_url + "/v2/health/live").json() == {"live": True}
    assert call(gateway_url + "/v2/health/ready").status == 200
    meta = call(gateway_url + "/v2").json()
    assert meta["name"] == "gateway"
    assert "binary_tensor_data" in meta["extensions"]


def test_model_metadata_comes_from_the_backends(gateway_url):
    meta = call(gateway_url + "/v2/models/digits").json()
    assert meta["name"] == "digits"
    assert meta["versions"] == ["1", "2"]
    assert meta["platform"] == "pytorch_torchscript,tensorflow_savedmodel"
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}]
    assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}]
    assert {v["name"]: v["weight"] for v in meta["variants"]} == {
        "tf-v1": 40, "torch-v1": 40, "tf-v2": 10, "torch-v2": 10,
    }  # fmt: skip
    assert all(v["ready"] for v in meta["variants"])
    one = call(gateway_url + "/v2/models/digits/versions/2").json()
    assert one["versions"] == ["2"]
    assert {v["name"] for v in one["variants"]} == {"tf-v2", "torch-v2"}


def test_ready_endpoints(gateway_url):
    assert call(gateway_url + "/v2/models/digits/ready").status == 200
    assert call(gateway_url + "/v2/models/digits/versions/1/ready").status == 200
    missing = call(gateway_url + "/v2/models/nope/ready")
    assert missing.status == 404
    assert missing.json() == {"error": "unknown model 'nope'"}


def test_json_inference_answers_correctly_from_every_variant(gateway_url):
    rows, labels = DIGITS.inputs[:32], DIGITS.labels[:32]
    seen: dict[str, np.ndarray] = {}
    for variant in VERSION_OF:
        reply = infer(gateway_url, rows, **{"x-gateway-variant": variant})
        assert reply.status == 200, reply.body
        assert reply.headers["x-gateway-variant"] == variant
        doc = reply.json()
        assert doc["model_name"] == "digits"
        assert doc["model_version"] == VERSION_OF[variant]
        probs = probabilities(reply)
        assert probs.shape == (32, 10)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
        assert (probs.argmax(axis=1) == labels).mean() >= 0.9
        seen[variant] = probs
    # The same version agrees across runtimes (same weights); the two versions differ.
    np.testing.assert_allclose(seen["tf-v1"], seen["torch-v1"], atol=1e-5)
    np.testing.assert_allclose(seen["tf-v2"], seen["torch-v2"], atol=1e-5)
    assert not np.allclose(seen["tf-v1"], seen["tf-v2"], atol=1e-3)


def test_tritonclient_http_binary_tensors(gateway_url):
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(gateway_url.removeprefix("http://"))
    try:
        assert client.is_server_live()
        assert client.is_model_ready("digits")
        rows = DIGITS.inputs[:16]
        for version in ("1", "2"):
            infer_input = httpclient.InferInput("input", list(rows.shape), "FP32")
            infer_input.set_data_from_numpy(rows, binary_data=True)
            wanted = httpclient.InferRequestedOutput("probabilities", binary_data=True)
            result = client.infer("digits", [infer_input], model_version=version, outputs=[wanted])
            probs = result.as_numpy("probabilities")
            assert probs.shape == (16, 10)
            assert result.get_response()["model_version"] == version
            assert (probs.argmax(axis=1) == DIGITS.labels[:16]).mean() >= 0.9
            json_reply = infer(gateway_url, rows, f"/v2/models/digits/versions/{version}/infer")
            np.testing.assert_allclose(probs, probabilities(json_reply), atol=1e-5)
        metadata = client.get_model_metadata("digits")
        assert metadata["inputs"][0]["name"] == "input"
    finally:
        client.close()


def test_split_follows_weights_within_statistical_bounds(gateway_url):
    n = 600
    counts = Counter(
        infer(gateway_url, DIGITS.inputs[i % 100 : i % 100 + 1]).headers["x-gateway-variant"]
        for i in range(n)
    )
    for variant, weight in {"tf-v1": 40, "torch-v1": 40, "tf-v2": 10, "torch-v2": 10}.items():
        p = weight / 100
        sigma = math.sqrt(n * p * (1 - p))
        assert abs(counts[variant] - n * p) <= 4.5 * sigma, counts


def test_sticky_users_always_land_on_the_same_variant(gateway_url):
    assignments: dict[str, set[str]] = {}
    for _ in range(4):
        for user in range(40):
            reply = infer(
                gateway_url, DIGITS.inputs[user : user + 1], **{"x-user-id": f"user-{user}"}
            )
            assert reply.status == 200
            assignments.setdefault(f"user-{user}", set()).add(reply.headers["x-gateway-variant"])
    assert all(len(variants) == 1 for variants in assignments.values()), assignments
    assert len(set().union(*assignments.values())) >= 2


def test_version_in_the_url_pins_the_version(gateway_url):
    for version, variants in (("1", {"tf-v1", "torch-v1"}), ("2", {"tf-v2", "torch-v2"})):
        served = set()
        for i in range(40):
            reply = infer(
                gateway_url, DIGITS.inputs[i : i + 1], f"/v2/models/digits/versions/{version}/infer"
            )
            assert reply.json()["model_version"] == version
            served.add(reply.headers["x-gateway-variant"])
        assert served == variants


def test_variant_pin_errors(gateway_url):
    unknown = infer(gateway_url, DIGITS.inputs[:1], **{"x-gateway-variant": "nope"})
    assert unknown.status == 400
    assert unknown.json()["error"] == (
        "model 'digits' has no variant 'nope' (variants: tf-v1, torch-v1, tf-v2, torch-v2)"
    )
    wrong = infer(
        gateway_url,
        DIGITS.inputs[:1],
        "/v2/models/digits/versions/2/infer",
        **{"x-gateway-variant": "tf-v1"},
    )
    assert wrong.status == 400
    assert "serves version 1, not version 2" in wrong.json()["error"]


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/v2/models/nope/infer", infer_body(DIGITS.inputs[:1]), 404, "unknown model 'nope'"),
        (
            "/v2/models/digits/versions/7/infer",
            infer_body(DIGITS.inputs[:1]),
            404,
            "has no version '7'",
        ),
        ("/v2/models/digits/infer", b"{", 400, "request body is not valid JSON"),
        (
            "/v2/models/digits/infer",
            b'{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 64], "data": [0.5]}]}',
            400,
            "input 'input': shape [1, 64] needs 64 values, data has 1",
        ),
        ("/v2/nothing", None, 404, "no such endpoint: GET /v2/nothing"),
    ],
)
def test_client_errors_are_oip_json(gateway_url, path, body, status, message):
    reply = call(gateway_url + path, body, {"content-type": "application/json"})
    assert reply.status == status
    assert reply.headers["content-type"] == "application/json"
    assert message in reply.json()["error"]


def test_backend_rejecting_a_tensor_is_a_400_naming_it(gateway_url):
    """A well-formed body the model cannot take (wrong width): the backend's reason comes back."""
    rows = np.zeros((1, 63), dtype=np.float32)
    for variant in VERSION_OF:
        reply = infer(gateway_url, rows, **{"x-gateway-variant": variant})
        assert reply.status == 400, (variant, reply.body)
        assert "rejected the request" in reply.json()["error"]
