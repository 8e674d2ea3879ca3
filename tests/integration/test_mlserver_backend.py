"""Real MLServer as an Open Inference Protocol backend, over REST and over gRPC.

MLServer (its own venv, ``.venv-mlserver``) serves digits 1 and 2 from the TorchServe archives'
TorchScript through ``model_store/mlserver``. Each module-level gateway has one backend entry per
protocol; ``digits`` keeps the backend's model name (bodies pass through byte for byte) and
``numbers`` renames it (only the names in the reply change). Faults are real: a request MLServer
rejects, a version it does not have until loaded through its repository API, and ``kill -9``.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as tritonclient
from tritonclient.grpc import service_pb2, service_pb2_grpc

from deploy.local.mlserver import MLServerPorts, add_version, mlserver_process
from deploy.local.process import ManagedProcess, free_port
from deploy.local.stack import MODEL_STORE, start_all
from model_store.digits import load_reference
from tests.integration.test_faults_and_metrics import samples, value
from tests.support.http import DIGITS, call, infer, probabilities
from tests.support.stack import gateway_config, running_gateway

pytestmark = [pytest.mark.stack, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

PROTOCOLS = ("rest", "grpc")
BAD_SHAPE = "input 'input' must have shape [N, 64] with N >= 1, got [1, 63]"


@dataclass(frozen=True)
class MLServer:
    ports: MLServerPorts
    run_dir: Path
    process: ManagedProcess


@dataclass(frozen=True)
class Gateway:
    http: str
    grpc: str


def start_mlserver(run_dir: Path) -> MLServer:
    ports = MLServerPorts(free_port(), free_port(), free_port())
    process = mlserver_process(run_dir, MODEL_STORE, ports)
    start_all([process], timeout=120)
    return MLServer(ports, run_dir, process)


def mlserver_backends(server: MLServer) -> dict:
    common = {
        "kind": "oip",
        "runtime": "mlserver",
        "url": f"http://127.0.0.1:{server.ports.http}",
        "grpc": f"127.0.0.1:{server.ports.grpc}",
        "timeout_s": 10,
    }
    return {f"ml-{protocol}": {**common, "protocol": protocol} for protocol in PROTOCOLS}


def variants(model: str | None, versions: tuple[int, ...] = (1, 2)) -> list[dict]:
    return [
        {"name": f"{protocol}-v{version}", "backend": f"ml-{protocol}", "model": model,
         "version": version, "weight": 1}
        for protocol in PROTOCOLS
        for version in versions
    ]  # fmt: skip


def gateway_for(server: MLServer, models: dict) -> dict:
    grpc_listen = {"host": "127.0.0.1", "port": free_port()}
    return gateway_config(None, models=models, backends=mlserver_backends(server), grpc=grpc_listen)


@pytest.fixture(scope="module")
def mlserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MLServer]:
    server = start_mlserver(tmp_path_factory.mktemp("mlserver"))
    try:
        yield server
    finally:
        server.process.stop()


@pytest.fixture(scope="module")
def gateway(mlserver: MLServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    unloaded = [
        {"name": f"{protocol}-v3", "backend": f"ml-{protocol}", "version": 3, "weight": 0}
        for protocol in PROTOCOLS
    ]
    digits = [*variants(None), *unloaded]
    config = gateway_for(
        mlserver,
        {"digits": {"variants": digits}, "numbers": {"variants": variants("digits")}},
    )
    with running_gateway(tmp_path_factory.mktemp("ml-gateway"), config) as url:
        yield Gateway(url, f"127.0.0.1:{config['server']['grpc']['port']}")


def pin(variant: str) -> dict[str, str]:
    return {"x-gateway-variant": variant}


def wait_for(condition: Callable[[], bool], seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def answers(url: str, status: int) -> Callable[[], bool]:
    return lambda: call(url).status == status


def raw_request(model: str, version: str, rows: np.ndarray, request_id: str = "r-1"):
    request = service_pb2.ModelInferRequest(model_name=model, model_version=version, id=request_id)
    request.inputs.add(name="input", datatype="FP32", shape=list(rows.shape))
    request.raw_input_contents.append(rows.astype("<f4").tobytes())
    return request


def model_infer(address: str, request, metadata: dict[str, str] | None = None):
    with grpc.insecure_channel(address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        return stub.ModelInfer(request, timeout=30, metadata=tuple((metadata or {}).items()))


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("version", ["1", "2"])
def test_every_test_digit_agrees_with_the_reference(gateway, protocol, version):
    """The whole test split through each backend protocol, from a JSON and a raw gRPC client."""
    expected = load_reference(version)
    variant = f"{protocol}-v{version}"
    reply = infer(gateway.http, DIGITS.inputs, f"/v2/models/digits/versions/{version}/infer",
                  **pin(variant))  # fmt: skip
    assert reply.status == 200, reply.body
    assert reply.headers["x-gateway-variant"] == variant
    np.testing.assert_allclose(probabilities(reply), expected, atol=1e-5)

    client = tritonclient.InferenceServerClient(gateway.grpc)
    try:
        tensor = tritonclient.InferInput("input", list(DIGITS.inputs.shape), "FP32")
        tensor.set_data_from_numpy(DIGITS.inputs)
        result = client.infer("numbers", [tensor], model_version=version, headers=pin(variant))
        assert result.get_response().model_name == "numbers"
        np.testing.assert_allclose(result.as_numpy("probabilities"), expected, atol=1e-5)
    finally:
        client.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_metadata_comes_from_mlserver(gateway, protocol):
    doc = call(f"{gateway.http}/v2/models/digits/versions/1").json()
    assert doc["platform"] == "pytorch_torchscript"
    assert doc["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}]
    assert doc["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}]
    assert {v["runtime"] for v in doc["variants"]} == {"mlserver"}
    client = tritonclient.InferenceServerClient(gateway.grpc)
    try:
        meta = client.get_model_metadata("numbers", "2")
        assert meta.name == "numbers"
        assert [(t.name, list(t.shape)) for t in meta.inputs] == [("input", [-1, 64])]
        assert client.is_model_ready("numbers", "2")
    finally:
        client.close()


def test_a_clients_grpc_request_is_forwarded_as_it_came(gateway, mlserver):
    """A typed-contents request reaches MLServer unchanged: it answers typed, as it does when
    called directly (re-encoded tensors would be raw), and the reply comes back byte for byte."""
    rows = DIGITS.inputs[:3]
    request = service_pb2.ModelInferRequest(model_name="digits", model_version="2", id="typed")
    tensor = request.inputs.add(name="input", datatype="FP32", shape=[3, 64])
    tensor.contents.fp32_contents.extend(rows.ravel().tolist())
    direct = model_infer(f"127.0.0.1:{mlserver.ports.grpc}", request)
    via = model_infer(gateway.grpc, request, pin("grpc-v2"))
    assert not via.raw_output_contents
    assert via.outputs[0].contents.fp32_contents
    assert via.SerializeToString() == direct.SerializeToString()

    raw = raw_request("numbers", "1", rows)
    via_raw = model_infer(gateway.grpc, raw, pin("grpc-v1"))
    direct_raw = model_infer(f"127.0.0.1:{mlserver.ports.grpc}", raw_request("digits", "1", rows))
    assert (via_raw.model_name, via_raw.model_version, via_raw.id) == ("numbers", "1", "r-1")
    assert via_raw.raw_output_contents == direct_raw.raw_output_contents
    probs = np.frombuffer(via_raw.raw_output_contents[0], "<f4").reshape(3, 10)
    np.testing.assert_allclose(probs, load_reference("1")[:3], atol=1e-5)


def test_a_clients_json_body_is_forwarded_as_it_came(gateway, mlserver):
    rows = DIGITS.inputs[:2]
    tensor = {"name": "input", "datatype": "FP32", "shape": [2, 64], "data": rows.ravel().tolist()}
    body = json.dumps({"id": "j-1", "inputs": [tensor]}).encode()
    headers = {"content-type": "application/json"}
    direct = call(f"http://127.0.0.1:{mlserver.ports.http}/v2/models/digits/versions/1/infer",
                  body, headers)  # fmt: skip
    via = call(f"{gateway.http}/v2/models/digits/infer", body, {**headers, **pin("rest-v1")})
    assert via.status == direct.status == 200
    assert via.body == direct.body


def test_binary_tensors_reach_mlserver_as_json(gateway):
    """MLServer has no binary tensor extension: a binary body is re-encoded, and the client still
    gets the binary outputs it asked for."""
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(gateway.http.removeprefix("http://"))
    try:
        tensor = httpclient.InferInput("input", [4, 64], "FP32")
        tensor.set_data_from_numpy(DIGITS.inputs[:4], binary_data=True)
        wanted = httpclient.InferRequestedOutput("probabilities", binary_data=True)
        result = client.infer("numbers", [tensor], model_version="2", outputs=[wanted],
                              headers=pin("rest-v2"))  # fmt: skip
        assert result.get_output("probabilities")["parameters"]["binary_data_size"] == 160
        np.testing.assert_allclose(
            result.as_numpy("probabilities"), load_reference("2")[:4], atol=1e-5
        )
    finally:
        client.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_tensor_mlserver_rejects_is_the_clients_400_with_its_message(gateway, protocol):
    bad = np.zeros((1, 63), dtype=np.float32)
    reply = infer(gateway.http, bad, **pin(f"{protocol}-v1"))
    assert reply.status == 400, reply.body
    assert reply.json()["error"] == f"backend 'ml-{protocol}' rejected the request: {BAD_SHAPE}"
    with pytest.raises(grpc.RpcError) as caught:
        model_infer(gateway.grpc, raw_request("digits", "1", bad), pin(f"{protocol}-v1"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert BAD_SHAPE in caught.value.details()


def test_metrics_name_the_runtime(gateway):
    for protocol in PROTOCOLS:
        assert infer(gateway.http, DIGITS.inputs[:1], **pin(f"{protocol}-v2")).status == 200
    found = samples(gateway.http)
    for protocol in PROTOCOLS:
        served = {"model": "digits", "version": "2", "variant": f"{protocol}-v2",
                  "backend": f"ml-{protocol}", "runtime": "mlserver"}  # fmt: skip
        assert value(found, "gateway_requests_total", **served, protocol="oip_rest", code="200")
        assert value(found, "gateway_upstream_duration_seconds_count", **served) >= 1
        gauge = {k: v for k, v in served.items() if k != "version"}
        assert value(found, "gateway_variant_ready", **gauge, version="2") == 1
        assert value(found, "gateway_variant_weight", **gauge, version="2") == 1


def test_a_version_loaded_through_mlservers_repository_api_becomes_ready(gateway, mlserver):
    """Version 3 is configured (weight 0) but not served: 503, with MLServer's word for it, until
    MLServer loads it on request."""
    ready = f"{gateway.http}/v2/models/digits/versions/3/ready"
    path = "/v2/models/digits/versions/3/infer"
    assert call(ready).status == 503
    for protocol in PROTOCOLS:
        reply = infer(gateway.http, DIGITS.inputs[:1], path, **pin(f"{protocol}-v3"))
        assert reply.status == 503, reply.body
        assert reply.json()["error"] == (
            f"backend 'ml-{protocol}' does not serve digits version 3: "
            "Model digits with version 3 not found"
        )
    add_version(mlserver.run_dir, MODEL_STORE, mlserver.ports.http, "3")
    assert wait_for(answers(ready, 200)), "version 3 never became ready"
    for protocol in PROTOCOLS:
        reply = infer(gateway.http, DIGITS.inputs[:16], path, **pin(f"{protocol}-v3"))
        assert reply.status == 200, reply.body
        np.testing.assert_allclose(probabilities(reply), load_reference("3")[:16], atol=1e-5)
    # Versions 1 and 2 stayed loaded.
    assert infer(gateway.http, DIGITS.inputs[:1], **pin("rest-v1")).status == 200


def test_killed_mlserver_is_not_ready_and_503(tmp_path):
    """kill -9: readiness flips within a few probe intervals, requests fail fast with 503."""
    server = start_mlserver(tmp_path / "mlserver")
    try:
        models = {f"m-{protocol}": {"variants": [{"name": f"{protocol}-v1", "model": "digits",
                  "backend": f"ml-{protocol}", "version": 1, "weight": 1}]}
                  for protocol in PROTOCOLS}  # fmt: skip
        with running_gateway(tmp_path / "gateway", gateway_for(server, models)) as url:
            for protocol in PROTOCOLS:
                assert infer(url, DIGITS.inputs[:1], f"/v2/models/m-{protocol}/infer").status == 200
            assert server.process.popen is not None
            os.killpg(server.process.popen.pid, signal.SIGKILL)
            server.process.popen.wait()
            for protocol in PROTOCOLS:
                assert wait_for(answers(f"{url}/v2/models/m-{protocol}/ready", 503)), protocol
                started = time.monotonic()
                reply = infer(url, DIGITS.inputs[:1], f"/v2/models/m-{protocol}/infer")
                assert reply.status == 503, reply.body
                assert f"backend 'ml-{protocol}'" in reply.json()["error"]
                assert time.monotonic() - started < 5
            assert call(f"{url}/v2/health/ready").status == 503
    finally:
        server.process.stop()
