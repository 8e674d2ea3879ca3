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
from loadtests import grpc_messages, payloads, summary_html
from loadtests.endpoints import ENDPOINTS, OIP_GRPC
from loadtests.expected import MISMATCH, Expected, Served
from loadtests.judge import judge, read_results
from loadtests.options import Settings
from loadtests.profiles import stage
from loadtests.slo import EndpointSlo, Slo, SloError, load_slo
from loadtests.traffic import DIGITS, Answer, Traffic
from loadtests.variant_stats import NO_VARIANT, VariantBook, read_variants
from model_store.digits import load_reference

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
    reply = orjson.dumps({**doc, "model_version": "2"})
    decoded, version = payloads.oip_answer(reply + answer.tobytes(), len(reply))
    assert decoded.argmax(axis=1).tolist() == [4, 2, 7]
    assert version == "2"


def test_json_answers_are_read_and_malformed_ones_refused():
    answer, version = payloads.tfs_rest_answer(b'{"predictions": [[0, 1, 0, 0, 0, 0, 0, 0, 0, 0]]}')
    assert answer.argmax(axis=1).tolist() == [1]
    assert version is None  # TF Serving's REST answers name no version
    with pytest.raises(ValueError, match=r"\[N, 10\]"):
        payloads.tfs_rest_answer(b'{"predictions": [[0.5, 0.5]]}')
    with pytest.raises(KeyError):
        payloads.oip_answer(b'{"outputs": [{"name": "other", "shape": [1], "data": [1]}]}')


def test_grpc_messages_round_trip():
    request = grpc_messages.tfs_predict_request(ROWS, "2")
    assert request.model_spec.version.value == 2
    assert [d.size for d in request.inputs["input"].tensor_shape.dim] == [3, 64]
    reply = tfs.PredictResponse()
    tensor = reply.outputs["probabilities"]
    tensor.dtype = tf.DT_FLOAT
    tensor.tensor_shape.dim.extend(tf.TensorShapeProto.Dim(size=n) for n in (3, 10))
    tensor.float_val.extend(one_hot(np.array([1, 2, 3])).ravel().tolist())
    probabilities, version = grpc_messages.tfs_answer(reply)
    assert probabilities.argmax(axis=1).tolist() == [1, 2, 3]
    assert version is None
    reply.model_spec.version.value = 2
    assert grpc_messages.tfs_answer(reply)[1] == "2"
    infer = grpc_messages.oip_infer_request(ROWS, "")
    assert list(infer.inputs[0].shape) == [3, 64]
    assert infer.model_version == ""
    assert grpc_messages.OIP_GRPC_WAY.method == f"/{OIP_GRPC.name}"


CATALOG = {"tf-v1": Served("1", "tfserving"), "torch-v2": Served("2", "torchserve")}


def traffic_for(book: VariantBook, batch_size: int = 2) -> Traffic:
    expected = Expected(CATALOG)
    return Traffic(Settings(batch_size=batch_size, anonymous_share=0.0), book, expected)


def test_answers_are_judged_against_the_served_versions_own_output():
    book = VariantBook()
    traffic = traffic_for(book)
    request = traffic.next_request()
    own = load_reference("1")[request.sample.indices]
    assert request.headers == {"x-user-id": traffic.user_id}
    assert traffic.check(request, Answer(own, "tf-v1", None, 3.0)) is None  # version: catalog
    assert traffic.check(request, Answer(own + 5e-5, "tf-v1", "1", 4.0)) is None  # within 1e-4
    corrupted = own.copy()
    corrupted[1, 0] += 0.01
    message = traffic.check(request, Answer(corrupted, "tf-v1", "1", 5.0))
    index = request.sample.indices[1]
    assert message == (
        f"{MISMATCH}: 1 of 2 digits differ from version 1's own output by up to 0.01 (> 0.0001),"
        f" variant tf-v1; test digit {index}: answered {corrupted[1].argmax()}, "
        f"the model says {own[1].argmax()}"
    )
    assert "names version 1" in str(traffic.check(request, Answer(own, "torch-v2", "1", 1.0)))
    assert traffic.check(request, Answer(own, None, None, 1.0)) == (
        "no x-gateway-variant on the answer"
    )
    unknown = traffic.check(request, Answer(own, "x", None, 1.0))
    assert unknown == "variant x is not in the gateway's catalog; no version named"
    stats = book.variants()
    assert (stats["tf-v1"].requests, stats["tf-v1"].failures, stats["tf-v1"].mismatched) == (
        3,
        1,
        1,
    )
    assert (stats["tf-v1"].runtime, stats["tf-v1"].version, stats["tf-v1"].digits) == (
        "tfserving", "1", 6,
    )  # fmt: skip
    assert stats[NO_VARIANT].failures == 1
    assert stats["tf-v1"].percentile_ms(0.5) == 4.0


def test_the_models_own_mistakes_are_accuracy_not_failures():
    reference = load_reference("1")
    misread = np.flatnonzero(reference.argmax(axis=1) != DIGITS.labels)
    assert misread.size > 0
    book = VariantBook()
    traffic = traffic_for(book, batch_size=1)
    request = traffic.next_request()
    index = int(misread[0])
    sample = payloads.Sample(DIGITS.inputs[[index]], DIGITS.labels[[index]], np.array([index]))
    request = type(request)(sample, request.headers)
    assert traffic.check(request, Answer(reference[[index]], "tf-v1", "1", 2.0)) is None
    tally = book.variants()["tf-v1"]
    assert (tally.digits, tally.correct, tally.failures, tally.accuracy) == (1, 0, 0, 0.0)


def test_a_user_that_moves_between_variants_is_a_failure():
    book = VariantBook()
    traffic = traffic_for(book)
    request = traffic.next_request()
    indices = request.sample.indices
    assert traffic.check(request, Answer(load_reference("1")[indices], "tf-v1", "1", 1)) is None
    moved = traffic.check(request, Answer(load_reference("2")[indices], "torch-v2", "2", 1))
    assert moved == f"sticky routing broke: {traffic.user_id} moved from tf-v1 to torch-v2"


def test_variant_books_merge_exactly_across_workers(tmp_path):
    worker, master = VariantBook(), VariantBook()
    for ms in (1.04, 1.2, 30.0, 160.0):
        worker.answered("tf-v1", ms, runtime="tfserving", version="1", digits=1, correct=1)
    worker.answered(NO_VARIANT, 2.0, failed=True)
    master.merge(orjson.loads(orjson.dumps(worker.take())))  # as msgpack carries it
    assert worker.variants() == {}
    master.answered("torch-v2", 3.0, runtime="torchserve", version="2", digits=2, correct=1)
    stats = master.variants()
    assert stats["tf-v1"].requests == 4
    assert stats["tf-v1"].percentile_ms(0.5) == 1.2
    assert stats["tf-v1"].percentile_ms(0.99) == 160.0
    paths = master.write(str(tmp_path / "r"))
    assert read_variants(paths[0]) == stats
    rows = paths[1].read_text().splitlines()
    assert rows[0].startswith("group,name,runtime,version,requests,failures,p50_ms,p99_ms")
    assert "runtime,torchserve,torchserve,,1,0,3.0,3.0,2,1,0,0.5000" in rows


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
        f"\"CatchResponseError('{MISMATCH}: 1 of 1 digits differ ...')\",5\n"
    )
    book = VariantBook()
    for _ in range(10):
        book.answered("torch-v2", 5.0, runtime="torchserve", version="2", digits=10, correct=8)
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
    assert "        5  FAIL" in verdict.table  # the mismatches among the failures
    assert "(torchserve)" in verdict.table  # the runtime's row
    page = summary_html.render(verdict, "t", "about", "loadtest.html")
    assert "SLO FAIL" in page
    assert "torch-v2: accuracy 0.800 &lt; 0.9" in page
    assert '<a href="loadtest.html">' in page


def test_the_runner_never_imports_locust_or_gevent():
    code = (
        "import sys, loadtests.run, loadtests.judge, loadtests.traffic, loadtests.grpc_messages; "
        "print(sorted(m for m in ('locust', 'gevent') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stderr
