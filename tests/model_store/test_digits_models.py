"""The committed ``digits`` artifacts: both exports of each version compute the same function.

Loads every version's TorchScript (from inside its TorchServe archive, as TorchServe does) and its
TF Serving SavedModel in-process, and checks them on the whole committed test split.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from model_store.digits import (
    NUM_CLASSES,
    NUM_FEATURES,
    TEST_SET_PATH,
    DigitsSet,
    load_reference,
    load_test_set,
)

pytestmark = pytest.mark.filterwarnings(
    # TorchServe's handler format is TorchScript, which this torch release deprecates.
    r"ignore:`torch\.jit\.load` is deprecated:DeprecationWarning",
)

REPO = Path(__file__).resolve().parents[2]
STORE = REPO / "model_store"
VERSIONS = ("1", "2", "3", "4")
GOOD_VERSIONS = ("1", "2", "3")
BAD_VERSIONS = {"4": "3"}  # the deliberately bad version -> the good one it was made from
MAX_TF_TORCH_DIFF = 1e-5
MIN_ACCURACY = 0.9


def mar_path(version: str) -> Path:
    return STORE / "torchserve" / f"digits_v{version}.mar"


def saved_model_path(version: str) -> Path:
    return STORE / "tfserving" / "digits" / version


def mar_manifest(version: str) -> dict[str, Any]:
    with zipfile.ZipFile(mar_path(version)) as archive:
        manifest: dict[str, Any] = json.loads(archive.read("MAR-INF/MANIFEST.json"))
    return manifest


@pytest.fixture(scope="module")
def test_set() -> DigitsSet:
    return load_test_set()


@pytest.fixture(scope="module")
def torch_outputs(test_set: DigitsSet) -> dict[str, np.ndarray[Any, Any]]:
    import torch

    outputs = {}
    for version in VERSIONS:
        serialized_file = mar_manifest(version)["model"]["serializedFile"]
        with zipfile.ZipFile(mar_path(version)) as archive:
            serialized = archive.read(serialized_file)
        module = torch.jit.load(io.BytesIO(serialized), map_location="cpu")
        module.eval()
        with torch.inference_mode():
            outputs[version] = module(torch.from_numpy(test_set.inputs)).numpy()
    return outputs


@pytest.fixture(scope="module")
def saved_models() -> dict[str, Any]:
    import tensorflow as tf

    return {version: tf.saved_model.load(str(saved_model_path(version))) for version in VERSIONS}


@pytest.fixture(scope="module")
def tf_outputs(
    saved_models: dict[str, Any], test_set: DigitsSet
) -> dict[str, np.ndarray[Any, Any]]:
    import tensorflow as tf

    return {
        version: model.signatures["serving_default"](input=tf.constant(test_set.inputs))[
            "probabilities"
        ].numpy()
        for version, model in saved_models.items()
    }


def test_test_set_file_has_the_documented_layout() -> None:
    with np.load(TEST_SET_PATH, allow_pickle=False) as archive:
        assert sorted(archive.files) == ["inputs", "labels"]
        inputs, labels = archive["inputs"], archive["labels"]
    assert inputs.dtype == np.float32
    assert labels.dtype == np.int64
    assert inputs.ndim == 2
    assert inputs.shape[1] == NUM_FEATURES
    assert labels.shape == (inputs.shape[0],)
    assert inputs.shape[0] >= 100
    assert inputs.min() >= 0.0
    assert inputs.max() <= 1.0
    # Raw 4-bit pixel values divided by 16.
    np.testing.assert_array_equal(inputs * 16, np.round(inputs * 16))
    assert set(labels.tolist()) == set(range(NUM_CLASSES))


def test_load_test_set_needs_numpy_only() -> None:
    script = (
        "import sys\n"
        "from model_store.digits import load_test_set\n"
        "test = load_test_set()\n"
        "heavy = {'sklearn', 'torch', 'tensorflow'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
        "print(len(test))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == len(load_test_set())


@pytest.mark.parametrize("version", VERSIONS)
def test_archive_manifest(version: str) -> None:
    model = mar_manifest(version)["model"]
    assert model["modelName"] == "digits"
    assert model["modelVersion"] == version
    assert model["handler"] == "digits_handler.py"
    assert model["serializedFile"].endswith(".pt")


@pytest.mark.parametrize("version", VERSIONS)
def test_saved_model_signature(saved_models: dict[str, Any], version: str) -> None:
    import tensorflow as tf

    signature = saved_models[version].signatures["serving_default"]
    args, kwargs = signature.structured_input_signature
    assert args == ()
    assert list(kwargs) == ["input"]
    assert kwargs["input"].dtype == tf.float32
    assert kwargs["input"].shape.as_list() == [None, NUM_FEATURES]
    outputs = signature.structured_outputs
    assert list(outputs) == ["probabilities"]
    assert outputs["probabilities"].dtype == tf.float32
    assert outputs["probabilities"].shape.as_list() == [None, NUM_CLASSES]


@pytest.mark.parametrize("version", VERSIONS)
def test_tensorflow_matches_torch(
    torch_outputs: dict[str, np.ndarray[Any, Any]],
    tf_outputs: dict[str, np.ndarray[Any, Any]],
    test_set: DigitsSet,
    version: str,
) -> None:
    torch_out, tf_out = torch_outputs[version], tf_outputs[version]
    assert torch_out.dtype == tf_out.dtype == np.float32
    assert torch_out.shape == tf_out.shape == (len(test_set), NUM_CLASSES)
    assert float(np.max(np.abs(tf_out - torch_out))) <= MAX_TF_TORCH_DIFF


@pytest.mark.parametrize("version", GOOD_VERSIONS)
@pytest.mark.parametrize("runtime", ["torch", "tf"])
def test_outputs_are_accurate_probabilities(
    torch_outputs: dict[str, np.ndarray[Any, Any]],
    tf_outputs: dict[str, np.ndarray[Any, Any]],
    test_set: DigitsSet,
    runtime: str,
    version: str,
) -> None:
    out = (torch_outputs if runtime == "torch" else tf_outputs)[version]
    assert np.all(out >= 0.0)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)
    accuracy = float(np.mean(out.argmax(axis=1) == test_set.labels))
    assert accuracy >= MIN_ACCURACY


def test_versions_differ(
    torch_outputs: dict[str, np.ndarray[Any, Any]],
    tf_outputs: dict[str, np.ndarray[Any, Any]],
) -> None:
    for outputs in (torch_outputs, tf_outputs):
        assert float(np.max(np.abs(outputs["1"] - outputs["2"]))) > 1e-2


@pytest.mark.parametrize(("bad", "base"), BAD_VERSIONS.items())
def test_bad_version_answers_probabilities_with_wrong_digits(
    torch_outputs: dict[str, np.ndarray[Any, Any]], test_set: DigitsSet, bad: str, base: str
) -> None:
    out = torch_outputs[bad]
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)
    disagreement = float(np.mean(out.argmax(axis=1) != torch_outputs[base].argmax(axis=1)))
    assert disagreement >= 0.2
    assert float(np.mean(out.argmax(axis=1) == test_set.labels)) < MIN_ACCURACY


@pytest.mark.parametrize("version", VERSIONS)
def test_reference_outputs_are_each_versions_own_answers(
    torch_outputs: dict[str, np.ndarray[Any, Any]],
    tf_outputs: dict[str, np.ndarray[Any, Any]],
    version: str,
) -> None:
    reference = load_reference(version)
    assert reference.dtype == np.float32
    assert reference.shape == torch_outputs[version].shape
    for served in (torch_outputs[version], tf_outputs[version]):
        assert float(np.max(np.abs(served - reference))) <= MAX_TF_TORCH_DIFF


def test_reference_names_what_it_lacks() -> None:
    with pytest.raises(KeyError, match=r"no reference outputs for version '9' \(have: v1, v2"):
        load_reference("9")
