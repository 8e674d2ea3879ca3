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
   ``[None, 64]`` -> ``probabilities`` float32 ``[None, 10]``);
4. writes the test split to ``digits_test.npz``, and each version's own answers to it
   (TorchScript probabilities) to ``digits_reference.npz``, which the load tests judge against;
5. reloads the written artifacts and checks, on the whole test split, each version's accuracy
   and the largest difference between the TensorFlow and the TorchScript probabilities (and that
   version 4 really does disagree with version 3).

The local stack serves versions 1 and 2 from the start; 3 and 4 are on disk for
``gateway deploy`` to load.

It exits non-zero when a check fails. Both models output softmax probabilities ``[N, 10]``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model_store.digits import (
    INPUT_NAME,
    NUM_CLASSES,
    NUM_FEATURES,
    OUTPUT_NAME,
    REFERENCE_PATH,
    DigitsSet,
    load_split,
    save_arrays,
    save_test_set,
)

STORE = Path(__file__).resolve().parent
TORCHSERVE_DIR = STORE / "torchserve"
HANDLER = TORCHSERVE_DIR / "digits_handler.py"
# Imported by the handler from the archive's own directory, which TorchServe puts on sys.path.
HANDLER_MODULES = (TORCHSERVE_DIR / "digits_protocol.py",)
TFSERVING_DIR = STORE / "tfserving" / "digits"
TEST_SET = STORE / "digits_test.npz"

MODEL_NAME = "digits"
MANIFEST = "MAR-INF/MANIFEST.json"
MAX_TF_TORCH_DIFF = 1e-5
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
class Layer:
    """One dense layer in PyTorch's layout: ``y = x @ weight.T + bias``."""

    weight: FloatArray  # [out, in]
    bias: FloatArray  # [out]


@dataclass(frozen=True)
class Outcome:
    version: str
    torch_accuracy: float
    tf_accuracy: float
    max_abs_diff: float


def mar_path(version: str) -> Path:
    return TORCHSERVE_DIR / f"digits_v{version}.mar"


def saved_model_path(version: str) -> Path:
    return TFSERVING_DIR / version


# TorchScript is what TorchServe's BaseHandler loads (``torch.jit.load``); this torch release marks
# the torch.jit API deprecated, which is all this silences.
@contextmanager
def _torchscript_deprecation_silenced() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"`torch\.jit\.\w+` is deprecated", category=DeprecationWarning
        )
        yield


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
    with _torchscript_deprecation_silenced():
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
    return _install(export_dir / f"{MODEL_NAME}.mar", mar_path(version), _same_mar)


def export_saved_model(layers: Sequence[Layer], version: str, work_dir: Path) -> Path:
    """The same network in plain TensorFlow ops, saved in TF Serving's ``<name>/<version>``."""
    import tensorflow as tf

    class TfDigits(tf.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(name="digits")
            self.kernels = [
                tf.Variable(layer.weight.T.copy(), trainable=False, name=f"kernel_{index}")
                for index, layer in enumerate(layers)
            ]
            self.biases = [
                tf.Variable(layer.bias.copy(), trainable=False, name=f"bias_{index}")
                for index, layer in enumerate(layers)
            ]

        @tf.function(  # type: ignore[untyped-decorator]
            input_signature=[tf.TensorSpec([None, NUM_FEATURES], tf.float32, name=INPUT_NAME)]
        )
        def serve(self, input: tf.Tensor) -> dict[str, tf.Tensor]:
            x = input
            last = len(self.kernels) - 1
            for index, (kernel, bias) in enumerate(zip(self.kernels, self.biases, strict=True)):
                x = tf.matmul(x, kernel) + bias
                if index < last:
                    x = tf.nn.relu(x)
            return {OUTPUT_NAME: tf.nn.softmax(x, axis=-1)}

    module = TfDigits()
    built = work_dir / f"saved_model_v{version}"
    tf.saved_model.save(module, str(built), signatures={"serving_default": module.serve})
    return _install(built, saved_model_path(version), _same_saved_model)


# Rebuilding the same models must leave the committed artifacts alone, but three things differ on
# every export even when nothing else does: the archive's "createdOn", TorchScript's random
# serialization id (and its order of constants), and the SavedModel fingerprint's random UUID.
# So a new artifact replaces the committed one only when it differs in anything else.


def _install(built: Path, target: Path, same: Callable[[Path, Path], bool]) -> Path:
    if target.exists() and same(built, target):
        print(f"  {target.relative_to(STORE)}: unchanged, kept")
        return target
    if target.is_dir():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(built, target)
    print(f"  {target.relative_to(STORE)}: written")
    return target


def _same_saved_model(built: Path, committed: Path) -> bool:
    def files(root: Path) -> dict[str, Path]:
        return {
            path.relative_to(root).as_posix(): path
            for path in sorted(root.rglob("*"))
            if path.is_file() and path.name != "fingerprint.pb"
        }

    new, old = files(built), files(committed)
    return new.keys() == old.keys() and all(
        new[name].read_bytes() == old[name].read_bytes() for name in new
    )


def _same_mar(built: Path, committed: Path) -> bool:
    try:
        new, old = _read_mar(built), _read_mar(committed)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return False
    new_manifest, old_manifest = new.pop(MANIFEST), old.pop(MANIFEST)
    serialized = new_manifest["model"]["serializedFile"]
    new_manifest.pop("createdOn", None)
    old_manifest.pop("createdOn", None)
    if new_manifest != old_manifest or new.keys() != old.keys():
        return False
    new_model, old_model = new.pop(serialized), old.pop(serialized)
    return new == old and _same_torchscript(new_model, old_model)


def _read_mar(path: Path) -> dict[str, Any]:
    """Every member's bytes, except the manifest, which is parsed."""
    with zipfile.ZipFile(path) as archive:
        members: dict[str, Any] = {name: archive.read(name) for name in archive.namelist()}
    members[MANIFEST] = json.loads(members[MANIFEST])
    return members


def _same_torchscript(new: bytes, old: bytes) -> bool:
    """Same parameters, bit for bit, and the same TorchScript code in every submodule."""
    import torch

    new_module, old_module = _load_torchscript(new), _load_torchscript(old)
    new_state, old_state = new_module.state_dict(), old_module.state_dict()
    if new_state.keys() != old_state.keys():
        return False
    if not all(
        new_state[name].dtype == old_state[name].dtype
        and torch.equal(new_state[name], old_state[name])
        for name in new_state
    ):
        return False

    def code(module: Any) -> dict[str, str]:
        return {name: str(sub.code) for name, sub in module.named_modules()}

    return code(new_module) == code(old_module)


def _load_torchscript(serialized: bytes) -> Any:
    import torch

    with _torchscript_deprecation_silenced():
        module = torch.jit.load(io.BytesIO(serialized), map_location="cpu")  # type: ignore[no-untyped-call]
    module.eval()
    return module


def torchscript_from_mar(path: Path) -> Any:
    """The TorchScript module inside a TorchServe archive, as TorchServe will load it."""
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read(MANIFEST))
        return _load_torchscript(archive.read(manifest["model"]["serializedFile"]))


def torch_probabilities(module: Any, inputs: FloatArray) -> FloatArray:
    import torch

    with torch.inference_mode():
        result: FloatArray = module(torch.from_numpy(inputs)).numpy()
    return result


def tf_probabilities(path: Path, inputs: FloatArray) -> FloatArray:
    import tensorflow as tf

    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    result: FloatArray = serve(**{INPUT_NAME: tf.constant(inputs)})[OUTPUT_NAME].numpy()
    return result


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


def verify(version: str, test: DigitsSet, references: dict[str, FloatArray]) -> Outcome:
    torch_out = references[f"v{version}"]
    tf_out = tf_probabilities(saved_model_path(version), test.inputs)
    for label, out in (("TorchScript", torch_out), ("TensorFlow", tf_out)):
        if out.dtype != np.float32 or out.shape != (len(test), NUM_CLASSES):
            raise SystemExit(f"v{version} {label}: got {out.dtype} {out.shape}")
    return Outcome(
        version=version,
        torch_accuracy=accuracy(torch_out, test.labels),
        tf_accuracy=accuracy(tf_out, test.labels),
        max_abs_diff=float(np.max(np.abs(tf_out - torch_out))),
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
        for recipe in RECIPES:
            model = train(recipe, split.train)
            print(f"v{recipe.version}: trained")
            export_mar(model, recipe.version, Path(work))
            export_saved_model(dense_layers(model), recipe.version, Path(work))
    save_test_set(split.test, TEST_SET)
    print(f"  {TEST_SET.relative_to(STORE)}: written")
    references = reference_outputs(split.test)
    save_arrays(REFERENCE_PATH, dict(references))
    print(f"  {REFERENCE_PATH.relative_to(STORE)}: written")

    failures: list[str] = []
    for recipe in RECIPES:
        outcome = verify(recipe.version, split.test, references)
        print(
            f"v{outcome.version}: accuracy torch={outcome.torch_accuracy:.4f} "
            f"tf={outcome.tf_accuracy:.4f}; max |tf - torch| = {outcome.max_abs_diff:.3g}"
        )
        if outcome.max_abs_diff > MAX_TF_TORCH_DIFF:
            failures.append(
                f"v{outcome.version}: TF and Torch differ by {outcome.max_abs_diff:.3g}"
            )
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
        elif min(outcome.torch_accuracy, outcome.tf_accuracy) < MIN_ACCURACY:
            failures.append(f"v{outcome.version}: accuracy below {MIN_ACCURACY}")
    print(f"built in {time.monotonic() - started:.1f}s")
    for failure in failures:
        print(f"FAILED {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
