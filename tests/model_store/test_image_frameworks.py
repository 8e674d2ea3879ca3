"""The served artefacts load, and answer as TorchScript does, under the images' own frameworks.

TF Serving 2.20.0 loads the SavedModels with TensorFlow 2.20 and Triton 26.08 loads the ONNX graphs
with ONNX Runtime 1.28.0 (deploy/image_python.py says where each version comes from). Here each
runs in its own venv (``make image-pythons``: ``tensorflow-cpu==2.20.0``, ``onnxruntime==1.28.0``),
loads every version from the model store and answers the whole test split, which must match each
version's reference answers (its TorchScript's) within 1e-5. The gateway venv's newer TensorFlow
would load the same SavedModels whatever wrote them, so it proves nothing here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deploy.image_python import TFSERVING, TRITON, ImagePython, run_module
from model_store.digits import NUM_CLASSES, load_reference, load_test_set

REPO = Path(__file__).resolve().parents[2]
STORE = REPO / "model_store"
VERSIONS = ("1", "2", "3", "4")
MAX_DIFF = 1e-5
# TF Serving 2.20.0's WORKSPACE builds TensorFlow at this commit (tensorflow/serving, tag 2.20.0).
TF_SERVING_TENSORFLOW_COMMIT = "72fbba3d20f4616d7312b5e2b7f79daf6e82f2fa"

CASES = {
    "tensorflow": (TFSERVING, STORE / "tfserving" / "digits"),
    "onnxruntime": (TRITON, STORE / "triton" / "digits"),
}


def pinned(image: ImagePython, package: str) -> str:
    (spec,) = [p for p in image.packages if p.startswith(f"{package}==")]
    return spec.split("==", 1)[1]


@pytest.fixture(scope="module", params=sorted(CASES))
def served(request: pytest.FixtureRequest, tmp_path_factory) -> dict[str, Any]:
    framework = str(request.param)
    image, root = CASES[framework]
    work = tmp_path_factory.mktemp(framework)
    np.savez(work / "inputs.npz", inputs=load_test_set().inputs)
    args = [framework, str(root), str(work / "inputs.npz"), str(work / "out.npz"), *VERSIONS]
    done = run_module(image, "model_store.image_outputs", args)
    assert done.returncode == 0, done.stderr
    with np.load(work / "out.npz", allow_pickle=False) as archive:
        outputs = {name: archive[name] for name in archive.files}
    return {"framework": framework, "image": image, **json.loads(done.stdout), "outputs": outputs}


def test_runs_the_framework_release_the_image_ships(served):
    package = "tensorflow-cpu" if served["framework"] == "tensorflow" else "onnxruntime"
    assert served["version"] == pinned(served["image"], package)


@pytest.mark.parametrize("version", VERSIONS)
def test_every_version_answers_as_its_reference(served, version):
    out = served["outputs"][f"v{version}"]
    reference = load_reference(version)
    assert out.dtype == np.float32
    assert out.shape == reference.shape
    assert out.shape[1] == NUM_CLASSES
    assert float(np.max(np.abs(out - reference))) <= MAX_DIFF


def saved_model_writer(version: str) -> tuple[str, str]:
    from tensorflow.core.protobuf import saved_model_pb2

    model = saved_model_pb2.SavedModel()
    path = STORE / "tfserving" / "digits" / version / "saved_model.pb"
    model.ParseFromString(path.read_bytes())
    (graph,) = model.meta_graphs
    return graph.meta_info_def.tensorflow_version, graph.meta_info_def.tensorflow_git_version


@pytest.mark.parametrize("version", VERSIONS)
def test_saved_models_were_written_by_tf_servings_own_tensorflow(version):
    """A SavedModel records the TensorFlow that wrote it. TensorFlow loads its own and older
    releases' exports, not newer ones, so none may be newer than TF Serving's; these were written
    by the very build it is made from (PyPI's 2.20.0 wheels and TF Serving 2.20.0 share the
    commit)."""
    written_by, git_version = saved_model_writer(version)
    serving_tf = tuple(int(part) for part in pinned(TFSERVING, "tensorflow-cpu").split(".")[:2])
    assert tuple(int(part) for part in written_by.split(".")[:2]) <= serving_tf, written_by
    assert git_version.endswith(f"-g{TF_SERVING_TENSORFLOW_COMMIT[:11]}"), git_version
