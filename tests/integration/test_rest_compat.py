"""TF Serving's and TorchServe's REST APIs on the gateway, as their docs show them, and version
labels across protocols. Same-protocol paths must forward bytes untouched: where the gateway's own
encoding would differ (number formatting), the answer must be byte-identical to the backend's."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest

from deploy.local.stack import StackPorts
from gateway.backends.torchserve_keys import INFERENCE
from tests.integration.test_translation_matrix import ROWS, pin
from tests.support.http import call, infer
from tests.support.stack import every_protocol_config, running_gateway, torchserve_auth

pytestmark = pytest.mark.stack
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def url(backends: StackPorts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_gateway(
        tmp_path_factory.mktemp("compat"), every_protocol_config(backends)
    ) as base:
        yield base


def test_tf_status_lists_versions_and_resolves_labels(url):
    assert call(f"{url}/v1/models/digits").json() == {
        "model_version_status": [
            {
                "version": v,
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
            for v in ("2", "1")
        ]
    }
    canary = call(f"{url}/v1/models/digits/labels/canary").json()["model_version_status"]
    assert [s["version"] for s in canary] == ["2"]
    assert (
        call(f"{url}/v1/models/digits/versions/1").json()["model_version_status"][0]["version"]
        == "1"
    )
    missing = call(f"{url}/v1/models/nope")
    assert missing.status == 404
    assert missing.json() == {"error": "unknown model 'nope'"}
    assert call(f"{url}/v1/models/digits/labels/beta").status == 404


def test_tf_metadata_is_built_from_the_backends(url):
    doc = call(f"{url}/v1/models/digits/versions/1/metadata").json()
    assert doc["model_spec"] == {"name": "digits", "signature_name": "", "version": "1"}
    signature = doc["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["method_name"] == "tensorflow/serving/predict"
    assert signature["inputs"]["input"]["dtype"] == "DT_FLOAT"
    dims = signature["inputs"]["input"]["tensor_shape"]["dim"]
    assert [d["size"] for d in dims] == ["-1", "64"]
    assert list(signature["outputs"]) == ["probabilities"]
    latest = call(f"{url}/v1/models/digits/metadata").json()["model_spec"]
    assert latest == {"name": "digits", "signature_name": "", "version": "2"}
    assert (
        call(f"{url}/v1/models/digits/labels/stable/metadata").json()["model_spec"]["version"]
        == "1"
    )


def test_tf_predict_by_label_and_latest(url):
    body = json.dumps({"instances": ROWS[:2].tolist()}).encode()
    by_label = call(f"{url}/v1/models/digits/labels/canary:predict", body, pin("tf_grpc-v2"))
    by_version = call(f"{url}/v1/models/digits/versions/2:predict", body, pin("tf_grpc-v2"))
    assert by_label.status == by_version.status == 200
    assert by_label.json() == by_version.json()
    assert by_label.headers["x-gateway-variant"] == "tf_grpc-v2"
    wrong = call(f"{url}/v1/models/digits/labels/stable:predict", body, pin("tf_grpc-v2"))
    assert wrong.status == 400
    assert "serves version 2, not label stable" in wrong.json()["error"]


def test_tf_rest_errors_are_tf_shaped(url):
    bad = call(
        f"{url}/v1/models/digits/versions/1:predict", b'{"instances": [[1, 2]]}', pin("ts_rest-v1")
    )
    assert bad.status == 400
    assert set(bad.json()) == {"error"}
    unknown_input = call(
        f"{url}/v1/models/digits:predict", b'{"inputs": {"pixels": [[0]]}}', pin("ts_grpc-v1")
    )
    assert unknown_input.status == 400
    assert "input tensor alias not found in signature: pixels" in unknown_input.json()["error"]
    assert call(f"{url}/v1/models/digits:predict", b"{", pin("tf_grpc-v1")).status == 400


def test_classify_is_forwarded_to_tf_serving_only(url):
    body = b'{"examples": [{"x": 1.0}]}'
    # The digits model has only a predict signature: TF Serving itself refuses to classify.
    tf_answer = call(f"{url}/v1/models/digits/versions/1:classify", body, pin("tf_rest-v1"))
    assert tf_answer.status == 400
    assert "classif" in tf_answer.json()["error"].lower()
    torch_answer = call(f"{url}/v1/models/digits/versions/1:classify", body, pin("ts_rest-v1"))
    assert torch_answer.status == 400
    assert torch_answer.json()["error"] == (
        "variant 'ts_rest-v1' runs on torchserve, which has no classify API; "
        "pin a TF Serving variant or use predict"
    )


def test_same_protocol_answers_are_the_backends_bytes(url, backends):
    """TF REST -> TF REST and TorchServe REST -> TorchServe REST forward bodies both ways."""
    body = json.dumps({"instances": ROWS[:2].tolist()}).encode()
    via = call(f"{url}/v1/models/digits/versions/1:predict", body, pin("tf_rest-v1"))
    direct = call(
        f"http://127.0.0.1:{backends.tfserving_rest}/v1/models/digits/versions/1:predict", body
    )
    assert via.status == direct.status == 200
    assert via.body == direct.body
    tensor = {
        "name": "input",
        "datatype": "FP32",
        "shape": [2, 64],
        "data": ROWS[:2].ravel().tolist(),
    }
    oip = json.dumps({"id": "same-bytes", "inputs": [tensor]}).encode()
    via = call(f"{url}/predictions/digits/1", oip, {**JSON, **pin("ts_rest-v1")})
    direct = call(
        f"http://127.0.0.1:{backends.torchserve.inference}/predictions/digits/1",
        oip,
        {**JSON, **torchserve_auth(backends, INFERENCE)},
    )
    assert via.status == direct.status == 200
    assert via.body == direct.body
    assert via.headers["content-type"] == direct.headers["content-type"]


def test_torchserve_api(url):
    assert call(f"{url}/ping").json() == {"status": "Healthy"}
    doc = {
        "inputs": [
            {"name": "input", "datatype": "FP32", "shape": [1, 64], "data": ROWS[0].tolist()}
        ]
    }
    reply = call(
        f"{url}/predictions/digits/canary", json.dumps(doc).encode(), {**JSON, **pin("tf_grpc-v2")}
    )
    assert reply.status == 200, reply.body
    assert reply.json()["model_version"] == "2"
    missing = call(f"{url}/predictions/nope", json.dumps(doc).encode(), JSON)
    assert missing.status == 404
    assert missing.json() == {
        "code": 404,
        "type": "ModelNotFoundException",
        "message": "unknown model 'nope'",
    }
    not_tensors = call(
        f"{url}/predictions/digits/1",
        b"\x89PNG...",
        {"content-type": "image/png", **pin("tf_grpc-v1")},
    )
    assert not_tensors.status == 415
    assert "TF Serving, which needs tensors" in not_tensors.json()["message"]


def test_labels_resolve_through_the_oip_version_field(url):
    reply = infer(url, ROWS[:1], "/v2/models/digits/versions/canary/infer")
    assert reply.status == 200
    assert reply.json()["model_version"] == "2"
    assert reply.headers["x-gateway-variant"].endswith("-v2")
    meta = call(f"{url}/v2/models/digits/versions/stable").json()
    assert meta["versions"] == ["1"]
    assert all("stable" in v["labels"] for v in meta["variants"])
    assert call(f"{url}/v2/models/digits/versions/canary/ready").status == 200
    assert np.asarray(reply.json()["outputs"][0]["data"]).shape == (10,)
