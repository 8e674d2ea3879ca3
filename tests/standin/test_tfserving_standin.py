"""The TF Serving stand-in, as a real process, through TF Serving's official clients and REST API.

Every SavedModel is built here in a temporary directory: ``digits`` (versions 1 and 2, the shape of
the project's model), ``text`` (a DT_STRING input, several outputs, and a two-input signature) and
``iris`` (a TF1-style model with classify, regress and predict signatures).
"""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)
from tensorflow_serving.config import model_server_config_pb2

from deploy.local.process import ManagedProcess, free_port, http_ok
from deploy.local.tfserving import (
    PROMETHEUS_PATH,
    REPO_ROOT,
    STANDIN_NAME,
    ModelEntry,
    configured_models,
    render_model_config,
    tfserving_process,
    uses_real_tfserving,
    write_model_config,
    write_monitoring_config,
)

pytestmark = pytest.mark.skipif(
    uses_real_tfserving(), reason="tensorflow_model_server is installed: the stand-in is not used"
)

STANDIN_BANNER = "TF Serving stand-in (gateway project, not TensorFlow Serving)"
GRPC_OPTIONS = [
    ("grpc.max_send_message_length", 2**31 - 1),
    ("grpc.max_receive_message_length", 2**31 - 1),
]


# --------------------------------------------------------------------------- models


class Digits(tf.Module):  # type: ignore[misc]
    """64 pixels in, 10 class probabilities out, with fixed weights per version."""

    def __init__(self, version: int) -> None:
        super().__init__()
        rng = np.random.default_rng(version)
        self.weights = tf.Variable(rng.normal(size=(64, 10)).astype(np.float32))
        self.bias = tf.Variable(rng.normal(size=(10,)).astype(np.float32))

    @tf.function(  # type: ignore[untyped-decorator]
        input_signature=[tf.TensorSpec([None, 64], tf.float32, name="input")]
    )
    def serve(self, input: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"probabilities": tf.nn.softmax(tf.matmul(input, self.weights) + self.bias)}


class Text(tf.Module):  # type: ignore[misc]
    @tf.function(  # type: ignore[untyped-decorator]
        input_signature=[tf.TensorSpec([None], tf.string, name="text")]
    )
    def serve(self, text: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"length": tf.strings.length(text), "echo_bytes": text}

    @tf.function(  # type: ignore[untyped-decorator]
        input_signature=[
            tf.TensorSpec([None, 2], tf.float32, name="a"),
            tf.TensorSpec([None, 2], tf.float32, name="b"),
        ]
    )
    def add(self, a: tf.Tensor, b: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"sum": a + b}


def build_iris(path: Path) -> None:
    """A TF1 SavedModel: tf.Example in, classes/scores or a regression out, plus a predict."""
    graph = tf.Graph()
    with graph.as_default():
        examples = tf.compat.v1.placeholder(tf.string, [None], name="tf_example")
        x = tf.io.parse_example(examples, {"x": tf.io.FixedLenFeature([1], tf.float32)})["x"]
        scores = tf.concat([tf.sigmoid(x), 1.0 - tf.sigmoid(x)], axis=1)
        classes = tf.tile(tf.constant([["pos", "neg"]]), [tf.shape(x)[0], 1])
        plain_x = tf.compat.v1.placeholder(tf.float32, [None, 1], name="x")
        signatures = {
            "serving_default": tf.compat.v1.saved_model.classification_signature_def(
                examples, classes, scores
            ),
            "regress_x": tf.compat.v1.saved_model.regression_signature_def(examples, 2.0 * x + 1.0),
            "predict_x": tf.compat.v1.saved_model.predict_signature_def(
                {"x": plain_x}, {"y": 3.0 * plain_x}
            ),
        }
        with tf.compat.v1.Session(graph=graph) as session:
            builder = tf.compat.v1.saved_model.Builder(str(path))
            builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map=signatures)
            builder.save()


@pytest.fixture(scope="module")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    for version in (1, 2):
        digits = Digits(version)
        tf.saved_model.save(
            digits,
            str(root / "digits" / str(version)),
            signatures={"serving_default": digits.serve},
        )
    text = Text()
    tf.saved_model.save(
        text,
        str(root / "text" / "1"),
        signatures={"serving_default": text.serve, "add": text.add},
    )
    build_iris(root / "iris" / "1")
    return root


@dataclass(frozen=True)
class StandIn:
    grpc_target: str
    rest_url: str
    log_path: Path
    startup_s: float


@pytest.fixture(scope="module")
def standin(model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandIn]:
    run_dir = tmp_path_factory.mktemp("run")
    config = run_dir / "models.config"
    config.write_text(
        render_model_config(
            [
                ModelEntry("digits", model_root / "digits", (1, 2), {"stable": 1, "canary": 2}),
                ModelEntry("text", model_root / "text"),
                ModelEntry("iris", model_root / "iris"),
            ]
        )
    )
    monitoring = write_monitoring_config(run_dir / "monitoring.config")
    grpc_port, rest_port = free_port(), free_port()
    process = tfserving_process(run_dir, config, grpc_port, rest_port, monitoring)
    process.start()
    try:
        startup_s = process.wait_ready(timeout=180)
        print(f"stand-in ready in {startup_s:.1f}s")
        yield StandIn(
            f"127.0.0.1:{grpc_port}", f"http://127.0.0.1:{rest_port}", process.log_path, startup_s
        )
    finally:
        process.stop()


@pytest.fixture(scope="module")
def channel(standin: StandIn) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(standin.grpc_target, options=GRPC_OPTIONS) as chan:
        yield chan


@pytest.fixture(scope="module")
def prediction(channel: grpc.Channel) -> prediction_service_pb2_grpc.PredictionServiceStub:
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope="module")
def loaded(model_root: Path) -> dict[str, Any]:
    """The same SavedModels loaded straight into this process, to compare results against."""
    return {
        "digits/1": tf.saved_model.load(str(model_root / "digits" / "1")),
        "digits/2": tf.saved_model.load(str(model_root / "digits" / "2")),
        "iris/1": tf.saved_model.load(str(model_root / "iris" / "1")),
    }


def pixels(rows: int, seed: int = 0) -> np.ndarray[Any, Any]:
    return np.random.default_rng(seed).uniform(0, 16, size=(rows, 64)).astype(np.float32)


def direct_digits(loaded: Mapping[str, Any], version: int, x: np.ndarray[Any, Any]) -> Any:
    function = loaded[f"digits/{version}"].signatures["serving_default"]
    return function(input=tf.constant(x))["probabilities"].numpy()


def digits_request(
    x: np.ndarray[Any, Any], version: int | None = None, label: str | None = None
) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "digits"
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    request.inputs["input"].CopyFrom(tf.make_tensor_proto(x))
    return request


def example(**features: float) -> tf.train.Example:
    return tf.train.Example(
        features=tf.train.Features(
            feature={
                k: tf.train.Feature(float_list=tf.train.FloatList(value=[v]))
                for k, v in features.items()
            }
        )
    )


# --------------------------------------------------------------------------- REST helper


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


def rest(standin: StandIn, path: str, body: Any = None, raw: bytes | None = None) -> Reply:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(standin.rest_url + path, data=data)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return Reply(response.status, dict(response.headers), response.read().decode())
    except urllib.error.HTTPError as error:
        return Reply(error.code, dict(error.headers), error.read().decode())


# --------------------------------------------------------------------------- launcher


def test_written_config_is_a_model_server_config_with_absolute_paths(tmp_path: Path) -> None:
    path = write_model_config(tmp_path / "models.config", Path("relative/digits"))
    config = text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())
    (entry,) = config.model_config_list.config
    assert entry.name == "digits"
    assert Path(entry.base_path).is_absolute()
    assert entry.model_platform == "tensorflow"
    assert list(entry.model_version_policy.specific.versions) == [1, 2]
    assert dict(entry.version_labels) == {"stable": 1, "canary": 2}
    (model,) = configured_models(path)
    assert model.expected_versions() == {1, 2}


def test_latest_and_all_policies_look_at_the_disk(tmp_path: Path) -> None:
    for version in ("1", "3", "20", "notes"):
        (tmp_path / "m" / version).mkdir(parents=True)
    config = tmp_path / "c.config"
    config.write_text(
        "model_config_list { config { name: 'a' base_path: '%s' } "
        "config { name: 'b' base_path: '%s' model_version_policy { latest { num_versions: 2 } } } "
        "config { name: 'c' base_path: '%s' model_version_policy { all {} } } }"
        % ((tmp_path / "m",) * 3)
    )
    a, b, c = configured_models(config)
    assert (a.expected_versions(), b.expected_versions(), c.expected_versions()) == (
        {20},
        {3, 20},
        {1, 3, 20},
    )


# --------------------------------------------------------------------------- identity


def test_identifies_itself_as_a_standin(standin: StandIn, channel: grpc.Channel) -> None:
    assert standin.log_path.read_text().splitlines()[0] == STANDIN_BANNER
    assert STANDIN_NAME in STANDIN_BANNER
    assert rest(standin, "/v1/models/digits").headers["Server"] == STANDIN_BANNER
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    _, call = stub.Predict.with_call(digits_request(pixels(1)))
    assert (("x-tfserving-standin", STANDIN_BANNER)) in tuple(call.trailing_metadata())
    version = subprocess.run(
        [sys.executable, "-m", "deploy.local.tfserving_standin", "--version"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert version.stdout.splitlines()[0] == STANDIN_BANNER
    assert "TensorFlow ModelServer" not in version.stdout


# --------------------------------------------------------------------------- gRPC


@pytest.mark.parametrize(
    ("version", "label", "answered_by"),
    [(1, None, 1), (2, None, 2), (None, "stable", 1), (None, "canary", 2), (None, None, 2)],
)
def test_grpc_predict_by_version_label_or_latest(
    prediction: Any,
    loaded: Mapping[str, Any],
    version: int | None,
    label: str | None,
    answered_by: int,
) -> None:
    x = pixels(5)
    response = prediction.Predict(digits_request(x, version, label), timeout=30)
    assert response.model_spec.name == "digits"
    assert response.model_spec.version.value == answered_by
    assert response.model_spec.signature_name == "serving_default"
    got = tf.make_ndarray(response.outputs["probabilities"])
    np.testing.assert_allclose(got, direct_digits(loaded, answered_by, x), rtol=1e-6)


def test_grpc_predict_takes_typed_values_and_answers_with_them(
    prediction: Any, loaded: Mapping[str, Any]
) -> None:
    x = pixels(2, seed=3)
    request = digits_request(x, version=1)
    typed = request.inputs["input"]
    typed.ClearField("tensor_content")
    typed.float_val.extend(x.ravel().tolist())
    response = prediction.Predict(request, timeout=30)
    output = response.outputs["probabilities"]
    # Like TF Serving's default, values come back in float_val rather than tensor_content.
    assert not output.tensor_content
    assert len(output.float_val) == 20
    assert [d.size for d in output.tensor_shape.dim] == [2, 10]
    np.testing.assert_allclose(tf.make_ndarray(output), direct_digits(loaded, 1, x), rtol=1e-6)


def test_grpc_output_filter_and_strings(prediction: Any) -> None:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "text"
    request.inputs["text"].CopyFrom(tf.make_tensor_proto([b"abc", "\u00e9t\u00e9".encode()]))
    request.output_filter.append("length")
    response = prediction.Predict(request, timeout=30)
    assert set(response.outputs) == {"length"}
    assert list(tf.make_ndarray(response.outputs["length"])) == [3, 5]


def test_grpc_metadata_lists_the_signatures(prediction: Any) -> None:
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "digits"
    response = prediction.GetModelMetadata(request, timeout=30)
    assert response.model_spec.name == "digits"
    assert response.model_spec.version.value == 2
    signature_defs = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signature_defs)
    signature = signature_defs.signature_def["serving_default"]
    assert signature.method_name == "tensorflow/serving/predict"
    (input_name,) = signature.inputs
    assert input_name == "input"
    assert signature.inputs["input"].dtype == tf.float32.as_datatype_enum
    assert [d.size for d in signature.inputs["input"].tensor_shape.dim] == [-1, 64]
    assert signature.outputs["probabilities"].dtype == tf.float32.as_datatype_enum
    assert [d.size for d in signature.outputs["probabilities"].tensor_shape.dim] == [-1, 10]


def test_grpc_model_status(channel: grpc.Channel) -> None:
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "digits"
    statuses = stub.GetModelStatus(request, timeout=30).model_version_status
    assert [(s.version, s.state, s.status.error_code) for s in statuses] == [
        (2, get_model_status_pb2.ModelVersionStatus.AVAILABLE, 0),
        (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE, 0),
    ]
    request.model_spec.version_label = "stable"
    assert [s.version for s in stub.GetModelStatus(request).model_version_status] == [1]
    request.model_spec.version.value = 9
    with pytest.raises(grpc.RpcError) as raised:
        stub.GetModelStatus(request)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert raised.value.details() == "Could not find version 9 of model digits"


def _with_spec(name: str, version: int | None = None, label: str | None = None) -> Any:
    request = digits_request(pixels(1), version, label)
    request.model_spec.name = name
    return request


def _with_input(key: str, value: Any) -> Any:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "digits"
    request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return request


def _with_signature(name: str) -> Any:
    request = digits_request(pixels(1))
    request.model_spec.signature_name = name
    return request


@pytest.mark.parametrize(
    ("request_", "code", "message"),
    [
        (_with_spec("nope"), "NOT_FOUND", "Servable not found for request: Latest(nope)"),
        (
            _with_spec("digits", version=7),
            "NOT_FOUND",
            "Servable not found for request: Specific(digits, 7)",
        ),
        (
            _with_spec("digits", label="beta"),
            "INVALID_ARGUMENT",
            "Unrecognized servable version label: beta",
        ),
        (
            _with_input("pixels", pixels(1)),
            "INVALID_ARGUMENT",
            "input tensor alias not found in signature: pixels. "
            "Inputs expected to be in the set {input}.",
        ),
        (
            predict_pb2.PredictRequest(model_spec={"name": "digits"}),
            "INVALID_ARGUMENT",
            "input size does not match signature: 0!=1 len({}) != len({input}). "
            "Sent extra: {}. Missing but required: {input}.",
        ),
        (
            _with_input("input", pixels(1).astype(np.float64)),
            "INVALID_ARGUMENT",
            "Expects arg[0] to be float but double is provided",
        ),
        (
            _with_input("input", np.ones((1, 3), np.float32)),
            "INVALID_ARGUMENT",
            "Matrix size-incompatible: In[0]: [1,3], In[1]: [64,10]",
        ),
        (_with_signature("nope"), "FAILED_PRECONDITION", 'Serving signature key "nope" not found.'),
    ],
    ids=["model", "version", "label", "alias", "missing", "dtype", "shape", "signature"],
)
def test_grpc_predict_errors_match_tf_serving(
    prediction: Any, request_: Any, code: str, message: str
) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        prediction.Predict(request_, timeout=30)
    assert raised.value.code() == getattr(grpc.StatusCode, code)
    assert raised.value.details().startswith(message)


def test_grpc_classify_and_regress(prediction: Any, loaded: Mapping[str, Any]) -> None:
    examples = [example(x=0.5), example(x=-2.0)]
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "iris"
    request.input.example_list.examples.extend(examples)
    response = prediction.Classify(request, timeout=30)
    assert response.model_spec.version.value == 1
    serialized = tf.constant([e.SerializeToString() for e in examples])
    direct = loaded["iris/1"].signatures["serving_default"](inputs=serialized)
    for row, classifications in enumerate(response.result.classifications):
        assert [c.label for c in classifications.classes] == ["pos", "neg"]
        np.testing.assert_allclose(
            [c.score for c in classifications.classes], direct["scores"].numpy()[row], rtol=1e-6
        )
    regression = regression_pb2.RegressionRequest()
    regression.model_spec.name = "iris"
    regression.model_spec.signature_name = "regress_x"
    regression.input.example_list.examples.extend(examples)
    values = [r.value for r in prediction.Regress(regression, timeout=30).result.regressions]
    assert values == [2.0, -3.0]


def test_classify_on_a_predict_signature_fails_like_tf_serving(
    prediction: Any, standin: StandIn
) -> None:
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "digits"
    request.input.example_list.examples.append(example(x=1.0))
    message = (
        "Expected classification signature method_name to be tensorflow/serving/classify. "
        "Was: tensorflow/serving/predict"
    )
    with pytest.raises(grpc.RpcError) as raised:
        prediction.Classify(request, timeout=30)
    assert (raised.value.code(), raised.value.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        message,
    )
    reply = rest(standin, "/v1/models/digits:classify", {"examples": [{"x": 1.0}]})
    assert (reply.status, reply.json()) == (400, {"error": message})


def test_health_reports_serving(channel: grpc.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    response = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_grpc_messages_above_64_mib(prediction: Any) -> None:
    x = np.full((270_000, 64), 0.5, np.float32)  # about 66 MiB of tensor_content
    response = prediction.Predict(digits_request(x, version=1), timeout=120)
    assert [d.size for d in response.outputs["probabilities"].tensor_shape.dim] == [270_000, 10]


# --------------------------------------------------------------------------- REST


def test_rest_model_status_is_tf_servings_json(standin: StandIn) -> None:
    reply = rest(standin, "/v1/models/digits")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/json"
    available = {"state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    assert reply.json() == {
        "model_version_status": [{"version": "2", **available}, {"version": "1", **available}]
    }
    assert rest(standin, "/v1/models/digits/versions/1").json() == {
        "model_version_status": [{"version": "1", **available}]
    }
    assert rest(standin, "/v1/models/digits/labels/canary").json() == {
        "model_version_status": [{"version": "2", **available}]
    }


def test_rest_metadata(standin: StandIn) -> None:
    reply = rest(standin, "/v1/models/digits/labels/stable/metadata").json()
    assert reply["model_spec"] == {"name": "digits", "signature_name": "", "version": "1"}
    signature = reply["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["method_name"] == "tensorflow/serving/predict"
    tensor = signature["inputs"]["input"]
    assert tensor["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in tensor["tensor_shape"]["dim"]] == ["-1", "64"]
    assert signature["outputs"]["probabilities"]["dtype"] == "DT_FLOAT"


@pytest.mark.parametrize(
    "path", ["/v1/models/digits:predict", "/v1/models/digits/versions/2:predict"]
)
def test_rest_predict_row_format(standin: StandIn, loaded: Mapping[str, Any], path: str) -> None:
    x = pixels(3, seed=1)
    expected = direct_digits(loaded, 2, x)
    reply = rest(standin, path, {"instances": x.tolist()})
    assert reply.status == 200
    np.testing.assert_allclose(reply.json()["predictions"], expected, rtol=1e-6)
    by_name = rest(
        standin,
        path,
        {"signature_name": "serving_default", "instances": [{"input": r} for r in x.tolist()]},
    )
    np.testing.assert_allclose(by_name.json()["predictions"], expected, rtol=1e-6)


def test_rest_columnar_single_output_is_bare(standin: StandIn, loaded: Mapping[str, Any]) -> None:
    x = pixels(2, seed=2)
    expected = direct_digits(loaded, 1, x)
    for inputs in (x.tolist(), {"input": x.tolist()}):
        reply = rest(standin, "/v1/models/digits/labels/stable:predict", {"inputs": inputs})
        outputs = reply.json()["outputs"]
        assert isinstance(outputs, list)  # one output: its value, not {"probabilities": ...}
        np.testing.assert_allclose(outputs, expected, rtol=1e-6)


def test_rest_multiple_outputs_and_b64(standin: StandIn) -> None:
    raw = b"\x00\xffbin"
    encoded = base64.b64encode(raw).decode()
    columnar = rest(standin, "/v1/models/text:predict", {"inputs": [{"b64": encoded}, "abcd"]})
    assert columnar.json() == {
        "outputs": {
            "length": [5, 4],
            "echo_bytes": [{"b64": encoded}, {"b64": base64.b64encode(b"abcd").decode()}],
        }
    }
    rows = rest(standin, "/v1/models/text:predict", {"instances": [{"b64": encoded}, "xy"]})
    assert rows.json() == {
        "predictions": [
            {"length": 5, "echo_bytes": {"b64": encoded}},
            {"length": 2, "echo_bytes": {"b64": base64.b64encode(b"xy").decode()}},
        ]
    }


def test_rest_multiple_inputs(standin: StandIn) -> None:
    body = {"signature_name": "add", "instances": [{"a": [1, 2], "b": [0.5, 0.25]}]}
    assert rest(standin, "/v1/models/text:predict", body).json() == {"predictions": [[1.5, 2.25]]}
    columnar = {"signature_name": "add", "inputs": {"a": [[1, 2]], "b": [[3, 4]]}}
    assert rest(standin, "/v1/models/text:predict", columnar).json() == {"outputs": [[4.0, 6.0]]}
    plain = {"signature_name": "add", "instances": [[1, 2]]}
    reply = rest(standin, "/v1/models/text:predict", plain)
    assert reply.status == 400
    assert reply.json()["error"].startswith(
        "instances is a plain list, but expecting list of objects"
    )


def test_rest_classify_and_regress(standin: StandIn) -> None:
    classes = rest(standin, "/v1/models/iris:classify", {"examples": [{"x": 0.0}]}).json()
    assert classes == {"results": [[["pos", 0.5], ["neg", 0.5]]]}
    regress = {"signature_name": "regress_x", "examples": [{"x": 1.0}, {"x": 2.5}]}
    assert rest(standin, "/v1/models/iris:regress", regress).json() == {"results": [3.0, 6.0]}
    context = {"signature_name": "regress_x", "context": {"x": 4.0}, "examples": [{}]}
    assert rest(standin, "/v1/models/iris/versions/1:regress", context).json() == {"results": [9.0]}


@pytest.mark.parametrize(
    ("path", "body", "status", "error"),
    [
        (
            "/v1/models/nope:predict",
            {"instances": [1]},
            404,
            "Servable not found for request: Latest(nope)",
        ),
        (
            "/v1/models/digits/versions/3:predict",
            {"instances": [1]},
            404,
            "Servable not found for request: Specific(digits, 3)",
        ),
        (
            "/v1/models/digits/labels/beta:predict",
            {"instances": [1]},
            400,
            "Unrecognized servable version label: beta",
        ),
        ("/v1/models/nope", None, 404, "Could not find any versions of model nope"),
        ("/v1/models/digits/versions/3", None, 404, "Could not find version 3 of model digits"),
        (
            "/v1/models/digits:predict",
            {"instances": [["a"] * 64]},
            400,
            "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: "
            'JSON Value: "a" Type: String is not of expected type: float',
        ),
        (
            "/v1/models/digits:predict",
            {"instances": [[1.0, 2.0]]},
            400,
            "Matrix size-incompatible: In[0]: [1,2], In[1]: [64,10]",
        ),
        (
            "/v1/models/digits:predict",
            {"signature_name": "nope", "instances": [1]},
            400,
            'Serving signature name: "nope" not found in signature def',
        ),
        ("/v1/models/digits:predict", {"rows": []}, 400, "Missing 'inputs' or 'instances' key"),
        (
            "/v1/models/digits:explain",
            {"instances": [1]},
            400,
            "Malformed request: POST /v1/models/digits:explain",
        ),
    ],
    ids=[
        "model",
        "version",
        "label",
        "status-model",
        "status-version",
        "type",
        "shape",
        "signature",
        "keys",
        "verb",
    ],
)
def test_rest_errors_match_tf_serving(
    standin: StandIn, path: str, body: Any, status: int, error: str
) -> None:
    reply = rest(standin, path, body)
    assert reply.status == status
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.json()["error"].startswith(error)


def test_rest_rejects_invalid_json(standin: StandIn) -> None:
    reply = rest(standin, "/v1/models/digits:predict", raw=b"{not json")
    assert reply.status == 400
    assert reply.json()["error"].startswith("JSON Parse error")


def test_prometheus_metrics(standin: StandIn, prediction: Any) -> None:
    prediction.Predict(digits_request(pixels(1)), timeout=30)
    rest(standin, "/v1/models/digits:predict", {"instances": pixels(1).tolist()})
    rest(standin, "/v1/models/digits/labels/beta:predict", {"instances": [1]})
    reply = rest(standin, PROMETHEUS_PATH)
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain")
    lines = reply.text.splitlines()
    assert "# TYPE :tensorflow:serving:request_count counter" in lines
    assert "# TYPE :tensorflow:serving:request_latency histogram" in lines

    def value(prefix: str) -> float:
        (line,) = [line for line in lines if line.startswith(prefix + " ")]
        return float(line.rsplit(" ", 1)[1])

    assert value(':tensorflow:serving:request_count{model_name="digits",status="OK"}') >= 2
    assert (
        value(':tensorflow:serving:request_count{model_name="digits",status="INVALID_ARGUMENT"}')
        >= 1
    )
    grpc_latency = (
        ":tensorflow:serving:request_latency_count"
        '{model_name="digits",API="Predict",entrypoint="GRPC"}'
    )
    assert value(grpc_latency) >= 1
    assert any(
        line.startswith(":tensorflow:serving:request_latency_bucket{") and 'le="+Inf"' in line
        for line in lines
    )


# --------------------------------------------------------------------------- lifecycle


def test_single_model_flags_serve_the_latest_version_and_sigterm_stops_it(
    model_root: Path, tmp_path: Path
) -> None:
    rest_port = free_port()
    status_url = f"http://127.0.0.1:{rest_port}/v1/models/digits"
    argv = [sys.executable, "-m", "deploy.local.tfserving_standin", "--model_name=digits"]
    argv += [f"--model_base_path={model_root / 'digits'}", f"--port={free_port()}"]
    argv += [f"--rest_api_port={rest_port}"]
    process = ManagedProcess("single", argv, tmp_path, lambda: http_ok(status_url), cwd=REPO_ROOT)
    process.start()
    try:
        process.wait_ready(timeout=180)
        assert f"rest={rest_port}" in process.log_path.read_text()
        statuses = json.loads(urllib.request.urlopen(status_url, timeout=10).read())
        assert [s["version"] for s in statuses["model_version_status"]] == ["2"]
        assert process.popen is not None
        started = time.monotonic()
        process.popen.send_signal(signal.SIGTERM)
        assert process.popen.wait(timeout=10) == 0
        # About a second when the machine is quiet (1 s gRPC grace, then TensorFlow's exit);
        # well under the 10 s after which a supervisor would kill it, even on a loaded one.
        assert time.monotonic() - started < 5
    finally:
        process.stop()


def test_a_label_of_a_version_not_loaded_fails_the_start(model_root: Path, tmp_path: Path) -> None:
    config = write_model_config(
        tmp_path / "models.config", model_root / "digits", versions=(1,), labels={"stable": 2}
    )
    argv = [sys.executable, "-m", "deploy.local.tfserving_standin", f"--model_config_file={config}"]
    argv += [f"--port={free_port()}", f"--rest_api_port={free_port()}"]
    result = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == STANDIN_BANNER
    assert "Failed to start server. Error: Request to assign label to version 2" in result.stderr
