"""Every front-end protocol to every backend protocol, on the digits model: the answers agree.

One gateway points six backend entries at the same three servers — TF Serving over gRPC and
REST, TorchServe over REST and gRPC, MLServer over the Open Inference Protocol's REST and gRPC —
and gives `digits` one variant per entry and version.
Each client below speaks one front-end protocol with its own official library (or as the
protocol's docs show it) and pins a variant with `x-gateway-variant`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc
import numpy as np
import pytest

from deploy.local.stack import StackPorts
from model_store.digits import load_reference
from tests.support.http import DIGITS, call
from tests.support.stack import BACKEND_ENTRIES, every_protocol_config, running_gateway

pytestmark = [pytest.mark.stack, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

ROWS = DIGITS.inputs[:8]


@dataclass(frozen=True)
class Gateway:
    http: str
    grpc: str


@pytest.fixture(scope="module")
def gateway(backends: StackPorts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    config = every_protocol_config(backends)
    with running_gateway(tmp_path_factory.mktemp("matrix"), config) as url:
        yield Gateway(url, f"127.0.0.1:{config['server']['grpc']['port']}")


def pin(variant: str) -> dict[str, str]:
    return {"x-gateway-variant": variant}


def oip_rest_json(gw: Gateway, variant: str, version: str) -> np.ndarray:
    doc = {"inputs": [{"name": "input", "datatype": "FP32", "shape": list(ROWS.shape),
                       "data": ROWS.ravel().tolist()}]}  # fmt: skip
    reply = call(f"{gw.http}/v2/models/digits/versions/{version}/infer", json.dumps(doc).encode(),
                 {"content-type": "application/json", **pin(variant)})  # fmt: skip
    assert reply.status == 200, reply.body
    assert reply.headers["x-gateway-variant"] == variant
    output = reply.json()["outputs"][0]
    return np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])


def oip_rest_binary(gw: Gateway, variant: str, version: str) -> np.ndarray:
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(gw.http.removeprefix("http://"))
    try:
        tensor = httpclient.InferInput("input", list(ROWS.shape), "FP32")
        tensor.set_data_from_numpy(ROWS, binary_data=True)
        result = client.infer("digits", [tensor], model_version=version, headers=pin(variant))
        return result.as_numpy("probabilities")
    finally:
        client.close()


def oip_grpc(gw: Gateway, variant: str, version: str) -> np.ndarray:
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(gw.grpc)
    try:
        tensor = grpcclient.InferInput("input", list(ROWS.shape), "FP32")
        tensor.set_data_from_numpy(ROWS)
        result = client.infer("digits", [tensor], model_version=version, headers=pin(variant))
        return result.as_numpy("probabilities")
    finally:
        client.close()


def tf_rest(gw: Gateway, variant: str, version: str, row_format: bool) -> np.ndarray:
    doc = {"instances": ROWS.tolist()} if row_format else {"inputs": {"input": ROWS.tolist()}}
    reply = call(f"{gw.http}/v1/models/digits/versions/{version}:predict",
                 json.dumps(doc).encode(), pin(variant))  # fmt: skip
    assert reply.status == 200, reply.body
    key = "predictions" if row_format else "outputs"
    return np.asarray(reply.json()[key], dtype=np.float32)


def tf_grpc(gw: Gateway, variant: str, version: str) -> np.ndarray:
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2
    from tensorflow_serving.apis import prediction_service_pb2_grpc as services

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "digits"
    request.model_spec.version.value = int(version)
    request.inputs["input"].CopyFrom(tf.make_tensor_proto(ROWS))
    with grpc.insecure_channel(gw.grpc) as channel:
        reply = services.PredictionServiceStub(channel).Predict(
            request, timeout=30, metadata=tuple(pin(variant).items())
        )
    assert reply.model_spec.version.value == int(version)
    return tf.make_ndarray(reply.outputs["probabilities"])


def torchserve_rest(gw: Gateway, variant: str, version: str, body_format: str) -> np.ndarray:
    if body_format == "oip":
        doc: dict = {"inputs": [{"name": "input", "datatype": "FP32", "shape": list(ROWS.shape),
                                 "data": ROWS.ravel().tolist()}]}  # fmt: skip
    else:
        doc = {"instances": ROWS.tolist()}
    reply = call(f"{gw.http}/predictions/digits/{version}", json.dumps(doc).encode(),
                 {"content-type": "application/json", **pin(variant)})  # fmt: skip
    assert reply.status == 200, reply.body
    answer = reply.json()
    if "predictions" in answer:  # a TF Serving variant answering TF Serving JSON
        return np.asarray(answer["predictions"], dtype=np.float32)
    output = answer["outputs"][0]
    return np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])


def torchserve_grpc(gw: Gateway, variant: str, version: str) -> np.ndarray:
    from tests.support.torchserve_grpc_messages import PredictionsRequest, predictions_stub

    doc = {"inputs": [{"name": "input", "datatype": "FP32", "shape": list(ROWS.shape),
                       "data": ROWS.ravel().tolist()}]}  # fmt: skip
    with grpc.insecure_channel(gw.grpc) as channel:
        reply = predictions_stub(channel)(
            PredictionsRequest(model_name="digits", model_version=version,
                               input={"data": json.dumps(doc).encode()}),
            timeout=30,
            metadata=tuple(pin(variant).items()),
        )  # fmt: skip
    output = json.loads(reply.prediction)["outputs"][0]
    return np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])


FRONT_ENDS: dict[str, Callable[[Gateway, str, str], np.ndarray]] = {
    "oip_rest_json": oip_rest_json,
    "oip_rest_binary": oip_rest_binary,
    "oip_grpc": oip_grpc,
    "tf_rest_row": lambda gw, v, ver: tf_rest(gw, v, ver, row_format=True),
    "tf_rest_columnar": lambda gw, v, ver: tf_rest(gw, v, ver, row_format=False),
    "tf_grpc": tf_grpc,
    "torchserve_rest_oip": lambda gw, v, ver: torchserve_rest(gw, v, ver, "oip"),
    "torchserve_rest_tfjson": lambda gw, v, ver: torchserve_rest(gw, v, ver, "tf"),
    "torchserve_grpc": torchserve_grpc,
}


@pytest.fixture(scope="module")
def reference(gateway: Gateway) -> dict[str, np.ndarray]:
    """Each version's answer through the plainest path: OIP JSON to TorchServe REST."""
    return {version: oip_rest_json(gateway, f"ts_rest-v{version}", version) for version in "12"}


def paths() -> Iterator[tuple[str, str]]:
    for front_end in FRONT_ENDS:
        for backend in BACKEND_ENTRIES:
            # TorchServe bodies reach TorchServe untouched; its handler reads OIP JSON only.
            if front_end == "torchserve_rest_tfjson" and backend.startswith("ts_"):
                continue
            yield front_end, backend


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize(("front_end", "backend"), list(paths()))
def test_every_path_gives_the_same_answer(gateway, reference, front_end, backend, version):
    probabilities = FRONT_ENDS[front_end](gateway, f"{backend}-v{version}", version)
    assert probabilities.shape == (len(ROWS), 10)
    np.testing.assert_allclose(probabilities, reference[version], atol=1e-5)
    np.testing.assert_allclose(probabilities, load_reference(version)[: len(ROWS)], atol=1e-5)
    assert (probabilities.argmax(axis=1) == DIGITS.labels[: len(ROWS)]).mean() >= 0.75


def test_torchserve_bodies_reach_torchserve_untouched(gateway):
    """A TF Serving JSON body for a TorchServe variant is not translated: its handler says no."""
    body = json.dumps({"instances": ROWS.tolist()}).encode()
    for variant in ("ts_rest-v1", "ts_grpc-v1"):
        headers = {"content-type": "application/json", **pin(variant)}
        reply = call(f"{gateway.http}/predictions/digits/1", body, headers)
        assert reply.status == 400
        assert "'inputs' must list exactly one tensor" in reply.json()["message"]
        assert reply.json()["type"] == "BadRequestException"
