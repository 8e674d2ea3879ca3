"""Train every ``digits`` version and regenerate every artifact in the model store.

Run ``python -m model_store.build`` from the repository root. It

1. trains version 1 (softmax regression, 64 -> 10), version 2 (an MLP, 64 -> 64 -> 10 with ReLU)
   and version 3 (a wider MLP, 64 -> 128 -> 10) in PyTorch on the fixed training split, with
   fixed seeds and deterministic algorithms, and makes version 4, a deliberately *bad* version:
   version 3's network with seeded noise on its weights (it still answers every request, with
   wrong digits), for the rollout demo's failed canary;
2. exports each as TorchScript inside a TorchServe archive ``torchserve/digits_v<N>.mar``
   (model name ``digits``, version ``<N>``, handler ``torchserve/digits_handler.py``);
3. rebuilds the same weights as a plain TensorFlow module and saves it as the TF Serving
   SavedModel ``tfserving/digits/<N>/`` (signature ``serving_default``: ``input`` float32
   ``[None, 64]`` -> ``probabilities`` float32 ``[None, 10]``), *with the TensorFlow release TF
   Serving's image is built on* (``model_store/tfserving_export.py`` under that release's venv,
   deploy/image_python.py), since TensorFlow does not promise to load newer releases' exports;
4. writes the same weights as ONNX graphs into the Triton model repository ``triton/digits/``
   (``config.pbtxt`` and ``<N>/model.onnx``, model_store/triton.py);
5. writes the test split to ``digits_test.npz``, and each version's own answers to it
   (TorchScript probabilities) to ``digits_reference.npz``, which the load tests judge against;
6. reloads the written artefacts *with the images' own frameworks* (TF Serving's TensorFlow,
   Triton's ONNX Runtime: ``model_store/image_outputs.py``) and checks, on the whole test split,
   each version's accuracy and the largest difference from the TorchScript probabilities (and
   that version 4 really does disagree with version 3).

The local stack serves versions 1 and 2 from the start; 3 and 4 are on disk for
``gateway deploy`` to load.

It exits non-zero when a check fails. Every export outputs softmax probabilities ``[N, 10]``.
The images' venvs must exist first (``make models`` makes them).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deploy.image_python import TFSERVING, TRITON, ImagePython, run_module
from model_store import triton
from model_store.artifacts import (
    install,
    same_bytes,
    same_mar,
    same_saved_model,
    torchscript_deprecation_silenced,
    torchscript_from_mar,
)
from model_store.digits import (
    NUM_CLASSES,
    NUM_FEATURES,
    REFERENCE_PATH,
    DigitsSet,
    load_split,
    save_arrays,
    save_test_set,
)
from model_store.layers import Layer, save_layers

STORE = Path(__file__).resolve().parent
TORCHSERVE_DIR = STORE / "torchserve"
HANDLER = TORCHSERVE_DIR / "digits_handler.py"
# Imported by the handler from the archive's own directory, which TorchServe puts on sys.path.
HANDLER_MODULES = (TORCHSERVE_DIR / "digits_protocol.py",)
TFSERVING_DIR = STORE / "tfserving" / "digits"
TRITON_DIR = STORE / "triton" / triton.MODEL_NAME
TEST_SET = STORE / "digits_test.npz"

MODEL_NAME = "digits"
MAX_EXPORT_DIFF = 1e-5  # between TorchScript and each other export
MIN_ACCURACY = 0.9
# A bad version must be visibly bad: its top class differs from its base's on this share of inputs.
MIN_BAD_DISAGREEMENT = 0.2

FloatArray = np.ndarray[Any, np.dtype[np.float32]]


@dataclass(frozen=True)
class Recipe:
    """How one version is built: ``hidden`` is the MLP's hidden width, None for no hidden layer."""

    version: str
    hidden: int | None
    epochs: int
    batch_size: int
    learning_rate: float
    weight_decay: float
    seed: int
    perturb: float = 0.0
    """Relative size of the seeded Gaussian noise added to every trained weight (0: none); a
    version with noise is deliberately bad and exempt from the accuracy floor."""

    @property
    def bad(self) -> bool:
        return self.perturb > 0


RECIPES: tuple[Recipe, ...] = (
    Recipe(
        "1", hidden=None, epochs=60, batch_size=64, learning_rate=0.02, weight_decay=1e-4, seed=1
    ),
    Recipe("2", hidden=64, epochs=40, batch_size=32, learning_rate=3e-3, weight_decay=0.0, seed=2),
    Recipe("3", hidden=128, epochs=60, batch_size=32, learning_rate=2e-3, weight_decay=0.0, seed=5),
    Recipe(
        "4",
        hidden=128,
        epochs=60,
        batch_size=32,
        learning_rate=2e-3,
        weight_decay=0.0,
        seed=5,
        perturb=1.5,
    ),
)
# Which good version each bad one was made from (the same network before the noise).
BAD_BASE = {"4": "3"}


@dataclass(frozen=True)
class Outcome:
    """One version's accuracy under each export, and each export's largest difference from the
    TorchScript probabilities."""

    version: str
    accuracy: dict[str, float]
    max_abs_diff: dict[str, float]


def mar_path(version: str) -> Path:
    return TORCHSERVE_DIR / f"digits_v{version}.mar"


def saved_model_path(version: str) -> Path:
    return TFSERVING_DIR / version


def train(recipe: Recipe, train_set: DigitsSet) -> Any:
    """A ``torch.nn.Module`` mapping ``[N, 64]`` to softmax probabilities ``[N, 10]``."""
    import torch
    from torch import nn

    class DigitsNet(nn.Module):
        def __init__(self, hidden: int | None) -> None:
            super().__init__()
            if hidden is None:
                self.layers = nn.Sequential(nn.Linear(NUM_FEATURES, NUM_CLASSES))
            else:
                self.layers = nn.Sequential(
                    nn.Linear(NUM_FEATURES, hidden), nn.ReLU(), nn.Linear(hidden, NUM_CLASSES)
                )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.layers(x), dim=1)

    torch.manual_seed(recipe.seed)
    model = DigitsNet(recipe.hidden)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay
    )
    loss_fn = nn.CrossEntropyLoss()
    inputs = torch.from_numpy(train_set.inputs)
    labels = torch.from_numpy(train_set.labels)
    order = torch.Generator().manual_seed(recipe.seed)
    model.train()
    for _ in range(recipe.epochs):
        permutation = torch.randperm(len(train_set), generator=order)
        for start in range(0, len(train_set), recipe.batch_size):
            batch = permutation[start : start + recipe.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model.layers(inputs[batch]), labels[batch])
            loss.backward()
            optimizer.step()
    model.eval()
    if recipe.perturb:
        noise = torch.Generator().manual_seed(recipe.seed + 1000)
        with torch.no_grad():
            for parameter in model.parameters():
                scale = recipe.perturb * float(parameter.std())
                parameter.add_(torch.randn(parameter.shape, generator=noise) * scale)
    return model


def dense_layers(model: Any) -> list[Layer]:
    from torch import nn

    return [
        Layer(
            weight=module.weight.detach().numpy().astype(np.float32),
            bias=module.bias.detach().numpy().astype(np.float32),
        )
        for module in model.layers
        if isinstance(module, nn.Linear)
    ]


def export_mar(model: Any, version: str, work_dir: Path) -> Path:
    """Script ``model``, archive it with the handler, and move the archive into the store."""
    import torch
    from model_archiver.model_archiver_config import (  # type: ignore[import-untyped]
        ModelArchiverConfig,
    )
    from model_archiver.model_packaging import (  # type: ignore[import-untyped]
        generate_model_archive,
    )

    serialized = work_dir / f"digits_v{version}.pt"
    with torchscript_deprecation_silenced():
        torch.jit.save(torch.jit.script(model), str(serialized))
    export_dir = work_dir / f"mar_v{version}"
    export_dir.mkdir()
    generate_model_archive(
        ModelArchiverConfig(
            model_name=MODEL_NAME,
            handler=str(HANDLER),
            extra_files=",".join(str(path) for path in HANDLER_MODULES),
            version=version,
            serialized_file=str(serialized),
            export_path=str(export_dir),
            force=True,
        )
    )
    return install(export_dir / f"{MODEL_NAME}.mar", mar_path(version), same_mar, STORE)


def export_saved_models(networks: dict[str, list[Layer]], work_dir: Path) -> None:
    """Every version's SavedModel, exported under TF Serving's own TensorFlow release."""
    weights = work_dir / "layers.npz"
    save_layers(weights, networks)
    built = work_dir / "saved_models"
    done = run_module(TFSERVING, "model_store.tfserving_export", [str(weights), str(built)])
    if done.returncode != 0:
        raise SystemExit(f"exporting the SavedModels failed:\n{done.stderr}")
    print(f"  SavedModels exported by TensorFlow {done.stdout.split()[-1]} ({TFSERVING.name} venv)")
    for version in networks:
        install(built / version, saved_model_path(version), same_saved_model, STORE)


def export_triton(networks: dict[str, list[Layer]], work_dir: Path) -> None:
    """The Triton model repository: one ONNX graph per version, and the model's config."""
    built = work_dir / "triton"
    for version, layers in networks.items():
        install(triton.write_model(built, layers, version), TRITON_DIR / version, same_bytes, STORE)
    config = triton.write_config(built)
    install(config, TRITON_DIR / triton.CONFIG_FILE, same_bytes, STORE)


def torch_probabilities(module: Any, inputs: FloatArray) -> FloatArray:
    import torch

    with torch.inference_mode():
        result: FloatArray = module(torch.from_numpy(inputs)).numpy()
    return result


def image_outputs(
    image: ImagePython, framework: str, root: Path, test: DigitsSet, work_dir: Path
) -> dict[str, FloatArray]:
    """Each version's answers to the test split, computed by ``image``'s own framework."""
    inputs, out = work_dir / f"{image.name}-inputs.npz", work_dir / f"{image.name}-outputs.npz"
    np.savez(inputs, inputs=test.inputs)
    versions = [recipe.version for recipe in RECIPES]
    args = [framework, str(root), str(inputs), str(out), *versions]
    done = run_module(image, "model_store.image_outputs", args)
    if done.returncode != 0:
        raise SystemExit(f"{framework} ({image.name} venv) failed:\n{done.stderr}")
    print(f"  checked with {framework} {json.loads(done.stdout)['version']} ({image.name} venv)")
    with np.load(out, allow_pickle=False) as archive:
        return {name: np.ascontiguousarray(archive[name]) for name in archive.files}


def accuracy(probabilities: FloatArray, labels: np.ndarray[Any, Any]) -> float:
    return float(np.mean(np.argmax(probabilities, axis=1) == labels))


def reference_outputs(test: DigitsSet) -> dict[str, FloatArray]:
    """Each version's own answers to the test split, from its exported TorchScript."""
    return {
        f"v{recipe.version}": torch_probabilities(
            torchscript_from_mar(mar_path(recipe.version)), test.inputs
        )
        for recipe in RECIPES
    }


def verify(
    version: str, test: DigitsSet, references: dict[str, FloatArray], served: dict[str, Any]
) -> Outcome:
    """One version under each export (``served``: export name -> outputs by ``v<version>``)."""
    torch_out = references[f"v{version}"]
    outputs = {"torch": torch_out, **{name: out[f"v{version}"] for name, out in served.items()}}
    for label, out in outputs.items():
        if out.dtype != np.float32 or out.shape != (len(test), NUM_CLASSES):
            raise SystemExit(f"v{version} {label}: got {out.dtype} {out.shape}")
    return Outcome(
        version=version,
        accuracy={label: accuracy(out, test.labels) for label, out in outputs.items()},
        max_abs_diff={
            label: float(np.max(np.abs(out - torch_out)))
            for label, out in outputs.items()
            if label != "torch"
        },
    )


def _make_deterministic() -> None:
    import torch

    torch.use_deterministic_algorithms(True)
    # One thread: the same summation order, hence the same weights, whatever the core count.
    torch.set_num_threads(1)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m model_store.build",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    started = time.monotonic()
    _make_deterministic()

    split = load_split()
    print(f"digits: {len(split.train)} train / {len(split.test)} test images")
    with tempfile.TemporaryDirectory(prefix="digits-build-") as work:
        networks: dict[str, list[Layer]] = {}
        for recipe in RECIPES:
            model = train(recipe, split.train)
            print(f"v{recipe.version}: trained")
            export_mar(model, recipe.version, Path(work))
            networks[recipe.version] = dense_layers(model)
        export_saved_models(networks, Path(work))
        export_triton(networks, Path(work))
        save_test_set(split.test, TEST_SET)
        print(f"  {TEST_SET.relative_to(STORE)}: written")
        references = reference_outputs(split.test)
        save_arrays(REFERENCE_PATH, dict(references))
        print(f"  {REFERENCE_PATH.relative_to(STORE)}: written")
        served = {
            "tf": image_outputs(TFSERVING, "tensorflow", TFSERVING_DIR, split.test, Path(work)),
            "onnx": image_outputs(TRITON, "onnxruntime", TRITON_DIR, split.test, Path(work)),
        }

    failures: list[str] = []
    for recipe in RECIPES:
        outcome = verify(recipe.version, split.test, references, served)
        accuracies = " ".join(f"{name}={value:.4f}" for name, value in outcome.accuracy.items())
        differences = ", ".join(
            f"|{name} - torch| = {value:.3g}" for name, value in outcome.max_abs_diff.items()
        )
        print(f"v{outcome.version}: accuracy {accuracies}; max {differences}")
        for name, difference in outcome.max_abs_diff.items():
            if difference > MAX_EXPORT_DIFF:
                failures.append(f"v{outcome.version}: {name} and torch differ by {difference:.3g}")
        if recipe.bad:
            base = BAD_BASE[recipe.version]
            disagreement = float(
                np.mean(
                    np.argmax(references[f"v{recipe.version}"], axis=1)
                    != np.argmax(references[f"v{base}"], axis=1)
                )
            )
            print(
                f"v{recipe.version}: deliberately bad; top class differs from v{base} on "
                f"{disagreement:.1%} of the test split"
            )
            if disagreement < MIN_BAD_DISAGREEMENT:
                failures.append(f"v{recipe.version}: too close to v{base} to be a bad version")
        elif min(outcome.accuracy.values()) < MIN_ACCURACY:
            failures.append(f"v{outcome.version}: accuracy below {MIN_ACCURACY}")
    print(f"built in {time.monotonic() - started:.1f}s")
    for failure in failures:
        print(f"FAILED {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
