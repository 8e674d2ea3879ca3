"""An Open Inference Protocol server as a backend: here another gateway, a real OIP server in
front of the real runtimes (an edge gateway in front of a regional one)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest

from tests.support.http import DIGITS, call, infer, probabilities
from tests.support.stack import gateway_config, running_gateway

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def edge(backends, gateway_url, tmp_path_factory) -> Iterator[str]:
    config = gateway_config(
        backends,
        backends={"regional": {"kind": "oip", "url": gateway_url, "timeout_s": 10}},
        models={
            "digits": {
                "variants": [
                    {"name": "regional-v1", "backend": "regional", "version": 1, "weight": 1},
                    {"name": "regional-v2", "backend": "regional", "version": 2, "weight": 0},
                ]
            }
        },
    )
    with running_gateway(tmp_path_factory.mktemp("edge"), config) as url:
        yield url


def test_json_and_binary_bodies_pass_through(edge, gateway_url):
    rows = DIGITS.inputs[:4]
    via_edge = infer(edge, rows)
    assert via_edge.status == 200, via_edge.body
    assert via_edge.headers["x-gateway-variant"] == "regional-v1"
    assert via_edge.json()["model_version"] == "1"
    direct = infer(gateway_url, rows, "/v2/models/digits/versions/1/infer")
    np.testing.assert_allclose(probabilities(via_edge), probabilities(direct), atol=1e-5)

    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(edge.removeprefix("http://"))
    try:
        tensor = httpclient.InferInput("input", list(rows.shape), "FP32")
        tensor.set_data_from_numpy(rows, binary_data=True)
        result = client.infer("digits", [tensor], model_version="2")
        direct_v2 = infer(gateway_url, rows, "/v2/models/digits/versions/2/infer")
        np.testing.assert_allclose(
            result.as_numpy("probabilities"), probabilities(direct_v2), atol=1e-5
        )
    finally:
        client.close()


def test_other_protocols_are_translated_to_binary_oip(edge, gateway_url):
    rows = DIGITS.inputs[:3]
    reply = call(
        f"{edge}/v1/models/digits/versions/1:predict",
        json.dumps({"instances": rows.tolist()}).encode(),
    )
    assert reply.status == 200, reply.body
    direct = infer(gateway_url, rows, "/v2/models/digits/versions/1/infer")
    np.testing.assert_allclose(
        np.asarray(reply.json()["predictions"]), probabilities(direct), atol=1e-5
    )


def test_metadata_and_readiness_come_from_the_oip_server(edge):
    meta = call(f"{edge}/v2/models/digits").json()
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}]
    assert meta["platform"] == "pytorch_torchscript,tensorflow_savedmodel"
    assert call(f"{edge}/v2/health/ready").status == 200


def test_errors_of_the_oip_server_keep_their_meaning(edge):
    bad = call(
        f"{edge}/v2/models/digits/infer",
        b'{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 63], "data": '
        + json.dumps([0.0] * 63).encode()
        + b"}]}",
        {"content-type": "application/json"},
    )
    assert bad.status == 400
    assert "backend 'regional' rejected the request" in bad.json()["error"]


def test_unversioned_urls_for_servers_that_route_only_by_model(backends, gateway_url, tmp_path):
    config = gateway_config(
        backends,
        backends={"regional": {"kind": "oip", "url": gateway_url, "versioned_urls": False}},
        models={
            "digits": {
                "variants": [{"name": "any", "backend": "regional", "version": 7, "weight": 1}]
            }
        },
    )
    with running_gateway(tmp_path, config) as url:
        reply = infer(url, DIGITS.inputs[:1], **{"x-user-id": "u1"})
        assert reply.status == 200, reply.body
        # The regional gateway chose the version (its split); its answer is passed through as is.
        assert reply.json()["model_version"] in ("1", "2")


def test_a_renamed_model_answers_under_its_public_name(backends, gateway_url, tmp_path):
    config = gateway_config(
        backends,
        backends={"regional": {"kind": "oip", "url": gateway_url}},
        models={
            "numbers": {
                "variants": [
                    {
                        "name": "n1",
                        "backend": "regional",
                        "model": "digits",
                        "version": 1,
                        "weight": 1,
                    }
                ]
            }
        },
    )
    with running_gateway(tmp_path, config) as url:
        reply = infer(url, DIGITS.inputs[:2], "/v2/models/numbers/infer")
        assert reply.status == 200, reply.body
        assert reply.json()["model_name"] == "numbers"
        assert reply.json()["model_version"] == "1"
        direct = infer(gateway_url, DIGITS.inputs[:2], "/v2/models/digits/versions/1/infer")
        np.testing.assert_allclose(probabilities(reply), probabilities(direct), atol=1e-5)
        import tritonclient.http as httpclient

        client = httpclient.InferenceServerClient(url.removeprefix("http://"))
        try:
            tensor = httpclient.InferInput("input", [2, 64], "FP32")
            tensor.set_data_from_numpy(DIGITS.inputs[:2], binary_data=True)
            result = client.infer("numbers", [tensor])
            assert result.get_response()["model_name"] == "numbers"
            np.testing.assert_allclose(
                result.as_numpy("probabilities"), probabilities(direct), atol=1e-5
            )
        finally:
            client.close()
