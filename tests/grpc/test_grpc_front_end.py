"""The gRPC front end, as a real ``gateway serve`` process in front of the real backends, spoken
to by each protocol's unchanged official client: tritonclient, tensorflow-serving-api's stubs,
TorchServe's messages, grpc health checking and reflection."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tensorflow as tf
import tritonclient.grpc as tritonclient
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    predict_pb2,
)
from tensorflow_serving.apis import model_service_pb2_grpc as model_service
from tensorflow_serving.apis import prediction_service_pb2_grpc as prediction_service
from tritonclient.grpc import service_pb2, service_pb2_grpc

from deploy.local.process import free_port
from deploy.local.stack import StackPorts
from gateway.app import Gateway
from gateway.config import parse_config
from tests.integration.test_faults_and_metrics import NOT_SENT_OR_TIMED_OUT, samples
from tests.support.http import DIGITS, infer, probabilities
from tests.support.stack import gateway_config, running_gateway
from tests.support.torchserve_grpc_messages import PredictionsRequest, predictions_stub

pytestmark = [pytest.mark.stack]

MIB = 1024 * 1024
LIMIT = 100 * MIB  # above the 70 MiB request below, and well above gRPC's 4 MiB default
ROWS, LABELS = DIGITS.inputs[:32], DIGITS.labels[:32]
PIN = "x-gateway-variant"


@dataclass(frozen=True)
class Addresses:
    http: str
    grpc: str


@pytest.fixture(scope="module")
def gateway(backends: StackPorts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Addresses]:
    port = free_port()
    config = gateway_config(
        backends, grpc={"host": "127.0.0.1", "port": port}, max_request_bytes=LIMIT
    )
    with running_gateway(tmp_path_factory.mktemp("grpc-gateway"), config) as url:
        yield Addresses(url, f"127.0.0.1:{port}")


@pytest.fixture
def triton(gateway: Addresses) -> Iterator:
    client = tritonclient.InferenceServerClient(gateway.grpc)
    yield client
    client.close()


@pytest.fixture
def channel(gateway: Addresses) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(gateway.grpc) as opened:
        yield opened


def triton_input(rows: np.ndarray):
    tensor = tritonclient.InferInput("input", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows)  # raw_input_contents, as tritonclient always sends
    return tensor


def accurate(probs: np.ndarray, labels: np.ndarray = LABELS) -> bool:
    return bool((probs.argmax(axis=1) == labels).mean() >= 0.9)


def status_of(error: Exception) -> str:
    return str(error.status())  # type: ignore[attr-defined]


# --- Open Inference Protocol: tritonclient ---------------------------------------------------


def test_tritonclient_health_and_metadata(triton):
    assert triton.is_server_live()
    assert triton.is_server_ready()
    assert triton.is_model_ready("digits")
    assert triton.is_model_ready("digits", "2")
    assert triton.is_model_ready("digits", "canary")
    assert triton.get_server_metadata().name == "gateway"
    meta = triton.get_model_metadata("digits", as_json=True)
    assert meta["name"] == "digits"
    assert meta["versions"] == ["1", "2"]
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": ["-1", "64"]}]
    assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": ["-1", "10"]}]
    assert triton.get_model_metadata("digits", "2", as_json=True)["versions"] == ["2"]


@pytest.mark.parametrize(("version", "served"), [("1", "1"), ("2", "2"), ("canary", "2")])
def test_tritonclient_raw_inference_agrees_with_rest(gateway, triton, version, served):
    result = triton.infer("digits", [triton_input(ROWS)], model_version=version)
    probs = result.as_numpy("probabilities")
    assert probs.shape == (32, 10)
    assert result.get_response().model_name == "digits"
    assert result.get_response().model_version == served
    assert accurate(probs)
    rest = infer(gateway.http, ROWS, f"/v2/models/digits/versions/{served}/infer")
    assert rest.status == 200, rest.body
    # Either runtime may serve each; they agree within 1e-5 (tests/model_store).
    np.testing.assert_allclose(probs, probabilities(rest), atol=1e-5)


def test_tritonclient_pins_a_variant(gateway, triton):
    for variant in ("tf-v2", "torch-v2"):
        result = triton.infer("digits", [triton_input(ROWS)], headers={PIN: variant})
        assert result.get_response().model_version == "2"
        rest = infer(gateway.http, ROWS, **{PIN: variant})
        np.testing.assert_allclose(result.as_numpy("probabilities"), probabilities(rest), atol=1e-6)


def test_tritonclient_errors(triton):
    with pytest.raises(tritonclient.InferenceServerException) as unknown:
        triton.infer("nope", [triton_input(ROWS[:1])])
    assert status_of(unknown.value) == "StatusCode.NOT_FOUND"
    assert unknown.value.message() == "unknown model 'nope'"
    narrow = np.zeros((1, 63), dtype=np.float32)
    for variant in ("tf-v1", "torch-v1"):
        with pytest.raises(tritonclient.InferenceServerException) as bad:
            triton.infer("digits", [triton_input(narrow)], headers={PIN: variant})
        assert status_of(bad.value) == "StatusCode.INVALID_ARGUMENT"
        assert "rejected the request" in bad.value.message()


def test_typed_contents_are_answered_with_typed_contents(channel):
    request = service_pb2.ModelInferRequest(model_name="digits", model_version="1", id="typed")
    tensor = request.inputs.add(name="input", datatype="FP32", shape=list(ROWS.shape))
    tensor.contents.fp32_contents.extend(ROWS.ravel().tolist())
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
    for variant in ("tf-v1", "torch-v1"):
        reply, call = stub.ModelInfer.with_call(request, metadata=((PIN, variant),), timeout=30)
        assert dict(call.initial_metadata())[PIN] == variant
        assert (reply.model_name, reply.model_version, reply.id) == ("digits", "1", "typed")
        assert not reply.raw_output_contents
        (output,) = reply.outputs
        assert (output.name, output.datatype, list(output.shape)) == (
            "probabilities",
            "FP32",
            [32, 10],
        )
        assert accurate(np.asarray(output.contents.fp32_contents).reshape(32, 10))


def test_malformed_tensor_is_invalid_argument_naming_it(channel):
    request = service_pb2.ModelInferRequest(model_name="digits")
    request.inputs.add(name="input", datatype="FP32", shape=[1, 64])
    request.raw_input_contents.append(b"\0" * 252)
    with pytest.raises(grpc.RpcError) as raised:
        service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == (
        "input 'input': raw content has 252 bytes, shape [1, 64] of FP32 needs 256"
    )


# --- TF Serving: tensorflow-serving-api's stubs ----------------------------------------------


def predict_request(**spec) -> object:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = spec.pop("name", "digits")
    if "version" in spec:
        request.model_spec.version.value = spec.pop("version")
    if "label" in spec:
        request.model_spec.version_label = spec.pop("label")
    request.inputs["input"].CopyFrom(tf.make_tensor_proto(ROWS))
    return request


@pytest.mark.parametrize(
    ("spec", "versions"),
    [({"version": 1}, {1}), ({"version": 2}, {2}), ({"label": "canary"}, {2}), ({}, {1, 2})],
)
def test_tf_serving_predict(gateway, channel, spec, versions):
    stub = prediction_service.PredictionServiceStub(channel)
    reply, call = stub.Predict.with_call(predict_request(**spec), timeout=30)
    assert reply.model_spec.name == "digits"
    assert reply.model_spec.version.value in versions
    assert reply.model_spec.signature_name == "serving_default"
    probs = tf.make_ndarray(reply.outputs["probabilities"])
    assert accurate(probs)
    variant = dict(call.initial_metadata())[PIN]
    rest = infer(gateway.http, ROWS, **{PIN: variant})
    np.testing.assert_allclose(probs, probabilities(rest), atol=1e-6)


def test_tf_serving_predict_on_a_torchserve_variant_is_translated(channel):
    stub = prediction_service.PredictionServiceStub(channel)
    answers = {}
    for variant in ("tf-v1", "torch-v1"):
        reply, call = stub.Predict.with_call(
            predict_request(version=1), metadata=((PIN, variant),), timeout=30
        )
        assert dict(call.initial_metadata())[PIN] == variant
        assert reply.model_spec.version.value == 1
        answers[variant] = tf.make_ndarray(reply.outputs["probabilities"])
    np.testing.assert_allclose(answers["torch-v1"], answers["tf-v1"], atol=1e-5)


def test_tf_serving_metadata_and_status(channel):
    stub = prediction_service.PredictionServiceStub(channel)
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "digits"
    request.model_spec.version.value = 2
    reply = stub.GetModelMetadata(request, timeout=30)
    assert reply.model_spec.version.value == 2
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert reply.metadata["signature_def"].Unpack(signatures)
    signature = signatures.signature_def["serving_default"]
    assert signature.method_name == "tensorflow/serving/predict"
    assert signature.inputs["input"].dtype == tf.float32.as_datatype_enum
    assert [d.size for d in signature.inputs["input"].tensor_shape.dim] == [-1, 64]
    assert [d.size for d in signature.outputs["probabilities"].tensor_shape.dim] == [-1, 10]
    # Like TF Serving, the reply names the version it describes: the latest unless one is asked.
    for label, version in (
        ({}, 2),
        ({"version_label": "stable"}, 1),
        ({"version_label": "canary"}, 2),
    ):
        asked = get_model_metadata_pb2.GetModelMetadataRequest(
            metadata_field=["signature_def"], model_spec={"name": "digits", **label}
        )
        assert stub.GetModelMetadata(asked, timeout=30).model_spec.version.value == version
    del request.metadata_field[:]
    request.metadata_field.append("graph_def")
    with pytest.raises(grpc.RpcError) as raised:
        stub.GetModelMetadata(request, timeout=30)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    status = model_service.ModelServiceStub(channel)
    available = get_model_status_pb2.ModelVersionStatus.AVAILABLE
    for spec, versions in (({}, [2, 1]), ({"version": {"value": 1}}, [1]),
                           ({"version_label": "canary"}, [2])):  # fmt: skip
        answer = status.GetModelStatus(
            get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "digits", **spec}),
            timeout=30,
        )
        assert [s.version for s in answer.model_version_status] == versions
        assert all(s.state == available for s in answer.model_version_status)
        assert all(s.status.error_code == 0 for s in answer.model_version_status)


def test_tf_serving_errors(channel):
    stub = prediction_service.PredictionServiceStub(channel)
    with pytest.raises(grpc.RpcError) as unknown:
        stub.Predict(predict_request(name="nope"), timeout=30)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name = "digits"
    with pytest.raises(grpc.RpcError) as raised:
        stub.Classify(classify, metadata=((PIN, "torch-v1"),), timeout=30)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "runs on torchserve, which has no classify API" in raised.value.details()
    assert dict(raised.value.initial_metadata())[PIN] == "torch-v1"


# --- TorchServe's gRPC API -------------------------------------------------------------------


def oip_body(rows: np.ndarray) -> bytes:
    tensor = {"name": "input", "datatype": "FP32", "shape": list(rows.shape),
              "data": rows.ravel().tolist()}  # fmt: skip
    return json.dumps({"inputs": [tensor]}).encode()


def test_torchserve_ping(channel):
    ping = channel.unary_unary("/org.pytorch.serve.grpc.inference.InferenceAPIsService/Ping")
    reply = ping(b"", timeout=30)  # Empty in; TorchServeHealthResponse{health = 1} out
    assert reply[:1] == b"\n"
    assert json.loads(reply[2:]) == {"status": "Healthy"}


def test_torchserve_predictions_pass_through_and_translate(channel):
    predictions: Any = predictions_stub(channel)  # a grpc UnaryUnaryMultiCallable
    answers = {}
    bodies = {"oip": oip_body(ROWS), "tfs": json.dumps({"instances": ROWS.tolist()}).encode()}
    for variant, body_format in (("torch-v1", "oip"), ("tf-v1", "oip"), ("tf-v1", "tfs")):
        request = PredictionsRequest(
            model_name="digits", model_version="1", input={"data": bodies[body_format]}
        )
        reply, call = predictions.with_call(request, metadata=((PIN, variant),), timeout=30)
        assert dict(call.initial_metadata())[PIN] == variant
        doc = json.loads(reply.prediction)
        assert doc["model_version"] == "1"
        output = doc["outputs"][0]
        answers[variant, body_format] = np.asarray(output["data"], np.float32).reshape(
            output["shape"]
        )
    reference = answers["torch-v1", "oip"]
    assert accurate(reference)
    np.testing.assert_allclose(answers["tf-v1", "oip"], reference, atol=1e-5)
    np.testing.assert_allclose(answers["tf-v1", "tfs"], reference, atol=1e-5)
    with pytest.raises(grpc.RpcError) as raised:
        predictions(
            PredictionsRequest(model_name="digits", input={"data": b"pixels"}),
            metadata=((PIN, "tf-v1"),),
            timeout=30,
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "runs on TF Serving, which needs tensors" in raised.value.details()


# --- Health, reflection, limits, deadlines, metrics --------------------------------------------


def test_health_checking_reports_serving(channel):
    health = health_pb2_grpc.HealthStub(channel)
    # It follows readiness within ~0.5 s: watch until the first probes have been published.
    watch = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=10)
    for update in watch:
        if update.status == health_pb2.HealthCheckResponse.SERVING:
            watch.cancel()
            break
    for service in ("", "inference.GRPCInferenceService", "tensorflow.serving.PredictionService",
                    "org.pytorch.serve.grpc.inference.InferenceAPIsService"):  # fmt: skip
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=30)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, service


def test_reflection_lists_and_describes_the_real_services(channel):
    database = ProtoReflectionDescriptorDatabase(channel)
    services = set(database.get_services())
    assert {
        "inference.GRPCInferenceService",
        "tensorflow.serving.PredictionService",
        "tensorflow.serving.ModelService",
        "org.pytorch.serve.grpc.inference.InferenceAPIsService",
        "grpc.health.v1.Health",
    } <= services
    pool = DescriptorPool(database)
    predict = pool.FindMessageTypeByName("tensorflow.serving.PredictRequest")
    assert [f.name for f in predict.fields] == ["model_spec", "inputs", "output_filter"]
    oip = pool.FindServiceByName("inference.GRPCInferenceService")
    method = oip.methods_by_name["ModelInfer"]
    assert method.input_type.full_name == "inference.ModelInferRequest"


def test_client_deadline_bounds_the_call(triton, channel):
    started = time.monotonic()
    with pytest.raises(tritonclient.InferenceServerException) as raised:
        triton.infer("digits", [triton_input(ROWS)], client_timeout=0.001)
    assert status_of(raised.value) == "StatusCode.DEADLINE_EXCEEDED"
    stub = prediction_service.PredictionServiceStub(channel)
    with pytest.raises(grpc.RpcError) as expired:
        stub.Predict(predict_request(), timeout=0.001)
    assert expired.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 2


def test_triton_timeout_parameter_bounds_the_backend_call(triton):
    # 50 us: TorchServe over REST never answers that fast (TF Serving over gRPC sometimes
    # does: gRPC deadlines have millisecond resolution).
    with pytest.raises(tritonclient.InferenceServerException) as raised:
        triton.infer("digits", [triton_input(ROWS)], timeout=50, headers={PIN: "torch-v1"})
    assert status_of(raised.value) == "StatusCode.DEADLINE_EXCEEDED"
    # Sent and timed out, or (once the gateway knows how long a call to it takes) not sent.
    assert re.fullmatch(
        NOT_SENT_OR_TIMED_OUT,
        raised.value.message(),
    ), raised.value.message()


def infer_or_error(client, rows: np.ndarray, **options) -> tuple:
    try:
        return client.infer("digits", [triton_input(rows)], **options), None
    except tritonclient.InferenceServerException as error:
        return None, error


def test_message_limit_is_the_configured_one(triton):
    rows = (70 * MIB) // (64 * 4) + 1
    big = np.random.default_rng(7).random((rows, 64), dtype=np.float32)
    assert 70 * MIB < big.nbytes < LIMIT
    result, error = infer_or_error(triton, big, headers={PIN: "tf-v1"}, client_timeout=120)
    if error is not None:  # the backend may refuse a batch this big, for its own reasons
        assert status_of(error) != "StatusCode.RESOURCE_EXHAUSTED", error.message()
        assert "backend 'tfserving'" in error.message()
    else:
        assert result.as_numpy("probabilities").shape == (rows, 10)
    too_big = np.zeros(((LIMIT // 256) + 1, 64), dtype=np.float32)
    with pytest.raises(tritonclient.InferenceServerException) as raised:
        triton.infer("digits", [triton_input(too_big)], client_timeout=120)
    assert status_of(raised.value) == "StatusCode.RESOURCE_EXHAUSTED"


def grpc_requests(url: str, protocol: str) -> float:
    return sum(
        count
        for (name, labels), count in samples(url).items()
        if name == "gateway_requests_total" and dict(labels)["protocol"] == protocol
    )


def test_metrics_count_each_grpc_protocol(gateway, triton, channel):
    before = {
        p: grpc_requests(gateway.http, p) for p in ("oip_grpc", "tfs_grpc", "torchserve_grpc")
    }
    triton.infer("digits", [triton_input(ROWS[:1])])
    prediction_service.PredictionServiceStub(channel).Predict(predict_request(), timeout=30)
    predictions_stub(channel)(
        PredictionsRequest(model_name="digits", input={"data": oip_body(ROWS[:1])}), timeout=30
    )
    with pytest.raises(tritonclient.InferenceServerException):
        triton.infer("nope", [triton_input(ROWS[:1])])
    after = {p: grpc_requests(gateway.http, p) for p in before}
    assert after["oip_grpc"] - before["oip_grpc"] == 2
    assert after["tfs_grpc"] - before["tfs_grpc"] == 1
    assert after["torchserve_grpc"] - before["torchserve_grpc"] == 1
    unrouted = ("gateway_requests_total", tuple(sorted({
        "model": "", "version": "", "variant": "", "backend": "", "runtime": "",
        "protocol": "oip_grpc", "code": "404"}.items())))  # fmt: skip
    assert samples(gateway.http)[unrouted] >= 1


def test_unexpected_errors_are_internal_and_logged_not_sent(backends, monkeypatch, caplog):
    """A bug (any non-gateway exception) reaches the client as INTERNAL with a fixed message."""
    config = parse_config(gateway_config(backends, grpc={"host": "127.0.0.1", "port": 0}))

    def broken(*args: object) -> bool:
        raise RuntimeError("secret detail")

    async def scenario() -> grpc.RpcError:
        gateway = Gateway(config)
        await gateway.start()
        monkeypatch.setattr(gateway.service, "model_ready", broken)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as opened:
                stub = service_pb2_grpc.GRPCInferenceServiceStub(opened)
                with pytest.raises(grpc.RpcError) as raised:
                    await stub.ModelReady(service_pb2.ModelReadyRequest(name="digits"), timeout=10)
                return raised.value
        finally:
            await gateway.stop()

    error = asyncio.run(scenario())
    assert error.code() == grpc.StatusCode.INTERNAL
    assert error.details() == "internal gateway error; see its log"
    assert "secret detail" in caplog.text


# --- Processes ---------------------------------------------------------------------------------


def listening_sockets(port: int) -> int:
    """Sockets in LISTEN state on ``port`` (each SO_REUSEPORT worker has its own)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if int(local.rsplit(":", 1)[1], 16) == port and state == "0A":
                count += 1
    return count


def announced_grpc_port(log: Path) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.search(r"gateway ready: .*grpc 127\.0\.0\.1:(\d+)", log.read_text())
        if found:
            return int(found[1])
        time.sleep(0.05)
    raise AssertionError(f"no gRPC port announced in {log}")


def test_two_workers_serve_grpc_on_one_port(backends, tmp_path):
    """Port 0: the supervisor reserves one port, and both workers bind it."""
    config = gateway_config(backends, workers=2, grpc={"host": "127.0.0.1", "port": 0})
    with running_gateway(tmp_path, config):
        port = announced_grpc_port(tmp_path / "gateway.log")
        assert listening_sockets(port) == 2
        for _ in range(20):  # a new connection each time: the kernel spreads them
            client = tritonclient.InferenceServerClient(f"127.0.0.1:{port}")
            try:
                result = client.infer("digits", [triton_input(ROWS[:4])])
                assert accurate(result.as_numpy("probabilities"), LABELS[:4])
            finally:
                client.close()
