"""The TorchServe handler and healthcheck run on the official image's Python (3.9), not ours.

``pytorch/torchserve:0.12.0`` runs Python 3.9: a ``bytes | bytearray`` in an ``isinstance`` once
imported fine there and failed every request. These tests run our code on that interpreter
(``make test`` creates ``.venv-images/torchserve`` with ``python -m deploy.image_python venv``)
with TorchServe's own envelope and context, and check that the lint rule catches 3.10+ code.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from deploy.image_python import TORCHSERVE, check
from deploy.local.stack import StackPorts

REPO = Path(__file__).resolve().parents[2]
PROBE = REPO / "tests" / "support" / "image_python_probe.py"
HANDLER_DIR = REPO / "model_store" / "torchserve"
HEALTHCHECK = REPO / "deploy" / "torchserve" / "healthcheck.py"


def image_python() -> str:
    interpreter = TORCHSERVE.interpreter
    assert interpreter.exists(), (
        f"{interpreter} is missing: `make test` creates it (python -m deploy.image_python venv)"
    )
    return str(interpreter)


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    done = subprocess.run(
        [image_python(), str(PROBE), *(str(path) for path in TORCHSERVE.files)],
        env={**os.environ, "PYTHONPATH": str(HANDLER_DIR)},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_runs_on_the_images_python(report):
    assert report["python"] == [3, 9]


@pytest.mark.parametrize("case", ["rest", "grpc", "grpc_bytearray"])
def test_requests_are_answered(report, case):
    answer = report[case]
    assert answer["status"] == 200, answer
    assert answer["content_type"] == "application/json"
    body = answer["body"]
    assert body["id"] == "r1"
    assert body["model_name"] == "digits"
    assert body["model_version"] == "1"
    (output,) = body["outputs"]
    assert output["name"] == "probabilities"
    assert output["datatype"] == "FP32"
    assert output["shape"] == [2, 10]
    assert len(output["data"]) == 20
    assert sum(output["data"][:10]) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("not_utf8", "request body is not UTF-8"),
        ("not_json", "request body is not JSON"),
        ("wrong_name", "unknown input 'x'"),
        ("wrong_shape", "must have shape [N, 64]"),
        ("too_few_values", "has 1 values but shape [2, 64] needs 128"),
        ("no_body", "no request body"),
    ],
)
def test_bad_requests_are_400_with_a_reason(report, case, message):
    answer = report[case]
    assert answer["status"] == 400
    assert message in answer["message"]


def test_describe(report):
    described = report["describe"]
    assert described["versions"] == ["1"]
    assert described["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}]


def test_image_files_need_nothing_newer_than_the_images_python():
    result = check(TORCHSERVE)
    assert result.returncode == 0, result.stdout


def test_the_check_catches_a_310_union_in_isinstance(tmp_path):
    bad = tmp_path / "handler.py"
    bad.write_text(
        "from __future__ import annotations\n\n"
        "def ok(body: bytes | None) -> bool:\n"  # an annotation: fine on 3.9 with the import
        "    return isinstance(body, bytes | bytearray)\n"
    )
    result = check(TORCHSERVE, [bad])
    assert result.returncode != 0
    assert "union types" in result.stdout


@pytest.mark.parametrize(
    ("models", "with_key", "healthy"),
    [
        (["digits/1", "digits/2"], True, True),
        (["digits/1", "digits/9"], True, False),
        (["digits/1", "digits/2"], False, False),  # token authorization is on
    ],
)
def test_healthcheck_on_the_images_python(backends: StackPorts, models, with_key, healthy):
    url = f"http://127.0.0.1:{backends.torchserve.management}"
    key = ["--key-file", str(backends.torchserve_key_file)] if with_key else []
    done = subprocess.run(
        [image_python(), str(HEALTHCHECK), *key, url, *models],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert (done.returncode == 0) == healthy, done.stdout + done.stderr


def test_a_missing_image_venv_says_how_to_make_it():
    from deploy.image_python import ImagePython, ImagePythonError, run_module

    absent = ImagePython(name="absent-for-test", images=(), python="3.11", packages=())
    with pytest.raises(ImagePythonError, match=r"make image-pythons"):
        run_module(absent, "model_store.image_outputs", ["--help"])
