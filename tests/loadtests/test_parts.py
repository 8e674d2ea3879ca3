"""The load test's pure parts, without Locust: bodies, checks, shapes, SLOs and the verdict."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest

from gateway.wire import tensorflow_pb2 as tf
from gateway.wire import tensorflow_serving_pb2 as tfs
from loadtests import grpc_messages, payloads
from loadtests.accuracy import AccuracyBook
from loadtests.endpoints import ENDPOINTS, OIP_GRPC
from loadtests.judge import judge, read_results
from loadtests.options import Settings
from loadtests.profiles import stage
from loadtests.slo import EndpointSlo, Slo, SloError, load_slo
from loadtests.traffic import DIGITS, Traffic

REPO = Path(__file__).resolve().parents[2]
ROWS = DIGITS.inputs[:3]


def one_hot(labels: np.ndarray) -> np.ndarray:
    return np.eye(10, dtype=np.float32)[labels]


def test_binary_bodies_carry_raw_fp32_both_ways():
    body, length = payloads.oip_binary_body(ROWS)
    header = orjson.loads(body[:length])
    assert header["inputs"][0]["parameters"]["binary_data_size"] == ROWS.nbytes
    assert np.array_equal(np.frombuffer(body[length:], "<f4").reshape(3, 64), ROWS)
    answer = one_hot(np.array([4, 2, 7]))
    doc = {"outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [3, 10],
                        "parameters": {"binary_data_size": answer.nbytes}}]}  # fmt: skip
    reply = orjson.dumps(doc)
    decoded = payloads.oip_binary_probabilities(reply + answer.tobytes(), len(reply))
    assert decoded.argmax(axis=1).tolist() == [4, 2, 7]


def test_json_answers_are_read_and_malformed_ones_refused():
    answer = payloads.tfs_rest_probabilities(b'{"predictions": [[0, 1, 0, 0, 0, 0, 0, 0, 0, 0]]}')
    assert answer.argmax(axis=1).tolist() == [1]
    with pytest.raises(ValueError, match=r"\[N, 10\]"):
        payloads.tfs_rest_probabilities(b'{"predictions": [[0.5, 0.5]]}')
    with pytest.raises(KeyError):
        payloads.oip_json_probabilities(
            b'{"outputs": [{"name": "other", "shape": [1], "data": [1]}]}'
        )


def test_grpc_messages_round_trip():
    request = grpc_messages.tfs_predict_request(ROWS, "2")
    assert request.model_spec.version.value == 2
    assert [d.size for d in request.inputs["input"].tensor_shape.dim] == [3, 64]
    reply = tfs.PredictResponse()
    tensor = reply.outputs["probabilities"]
    tensor.dtype = tf.DT_FLOAT
    tensor.tensor_shape.dim.extend(tf.TensorShapeProto.Dim(size=n) for n in (3, 10))
    tensor.float_val.extend(one_hot(np.array([1, 2, 3])).ravel().tolist())
    assert grpc_messages.tfs_probabilities(reply).argmax(axis=1).tolist() == [1, 2, 3]
    infer = grpc_messages.oip_infer_request(ROWS, "")
    assert list(infer.inputs[0].shape) == [3, 64]
    assert infer.model_version == ""
    assert grpc_messages.OIP_GRPC_WAY.method == f"/{OIP_GRPC.name}"


def test_traffic_judges_answers_and_counts_accuracy_per_variant():
    book = AccuracyBook()
    traffic = Traffic(Settings(batch_size=2, anonymous_share=0.0), book)
    request = traffic.next_request()
    labels = request.sample.labels
    assert request.headers == {"x-user-id": traffic.user_id}
    assert traffic.check(request, one_hot(labels), "tf-v1") is None
    wrong = one_hot((labels + 1) % 10)
    message = traffic.check(request, wrong, "tf-v1")
    assert (
        message
        == f"wrong answer: predicted {(labels[0] + 1) % 10}, label {labels[0]}, variant tf-v1"
    )
    assert traffic.check(request, one_hot(labels), "torch-v2") == (
        f"sticky routing broke: {traffic.user_id} moved from tf-v1 to torch-v2"
    )
    assert traffic.check(request, one_hot(labels), None) == "no x-gateway-variant on the answer"
    tallies = book.tallies()
    assert (tallies["tf-v1"].digits, tallies["tf-v1"].correct) == (4, 2)
    assert tallies["torch-v2"].accuracy == 1.0


def test_every_shape_ends():
    assert stage("constant", 5, 10, 12, 2.0) == (12, 2.0)
    ramp = [stage("ramp", t, 10, 12, 2.0) or (0, 0.0) for t in range(10)]
    users = [count for count, _ in ramp]
    assert users == sorted(users)
    assert users[0] == 1
    assert users[-1] == 12
    assert stage("spike", 1, 10, 12, 2.0) == (4, 12.0)
    assert stage("spike", 5, 10, 12, 2.0) == (12, 12.0)
    assert all(stage(shape, 10, 10, 12, 2.0) is None for shape in ("constant", "ramp", "spike"))


def test_slo_file_names_its_mistakes(tmp_path):
    slo = load_slo().overridden(p50_ms=1.5)
    assert set(slo.endpoints) == set(ENDPOINTS)
    assert all(limits.p50_ms == 1.5 for limits in slo.endpoints.values())
    assert slo.accuracy_for("any-variant") == 0.9
    path = tmp_path / "slo.yaml"
    path.write_text("endpoints:\n  default: {p50_ms: 1, p99_ms: 2, max_failure_ratio: 0}\n"
                    "  oip_grcp: {p50_ms: 3}\nmin_accuracy: {default: 0.9}\n")  # fmt: skip
    with pytest.raises(SloError, match="endpoints: unknown key 'oip_grcp'"):
        load_slo(path)


def test_the_verdict_names_every_missed_threshold(tmp_path):
    header = "Type,Name,Request Count,Failure Count,50%,99%\n"
    (tmp_path / "r_stats.csv").write_text(
        header + "grpc,inference.GRPCInferenceService/ModelInfer,100,20,30,400\n"
    )
    (tmp_path / "r_failures.csv").write_text(
        "Method,Name,Error,Occurrences\ngrpc,inference.GRPCInferenceService/ModelInfer,"
        "\"CatchResponseError('wrong answer: predicted 3, label 8, variant torch-v2')\",5\n"
    )
    book = AccuracyBook()
    book.record("torch-v2", 100, 80)
    book.write(str(tmp_path / "r"))
    slo = Slo({key: EndpointSlo(25, 250, 0.08) for key in ENDPOINTS}, {"default": 0.9})
    verdict = judge(read_results(str(tmp_path / "r")), slo, [OIP_GRPC, ENDPOINTS["tfs_rest"]])
    assert verdict.misses == [
        "oip_grpc: p50 30 ms > 25 ms",
        "oip_grpc: p99 400 ms > 250 ms",
        "oip_grpc: failure ratio 20.00% > 8.00%",
        "tfs_rest: no requests",
        "torch-v2: accuracy 0.800 < 0.9",
    ]
    assert "     5  FAIL" in verdict.table  # the wrong answers among the failures


def test_the_runner_never_imports_locust_or_gevent():
    code = (
        "import sys, loadtests.run, loadtests.judge, loadtests.traffic, loadtests.grpc_messages; "
        "print(sorted(m for m in ('locust', 'gevent') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stderr
