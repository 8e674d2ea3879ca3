"""The ``digits`` data: scikit-learn's bundled 8x8 handwritten digits (no download).

Every model input is one image as a flat FP32 row of 64 pixels scaled to [0, 1] (raw value / 16),
so a batch is ``[N, 64]``; labels are the digits 0-9 as int64. The split is fixed (seeded and
stratified), and its test half is committed as ``digits_test.npz`` so that the demo and the load
tests can read it with numpy alone: this module imports scikit-learn only inside ``load_split``.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"
NUM_FEATURES = 64
NUM_CLASSES = 10

SPLIT_SEED = 20240601
TEST_FRACTION = 0.25

TEST_SET_PATH = Path(__file__).resolve().parent / "digits_test.npz"
REFERENCE_PATH = Path(__file__).resolve().parent / "digits_reference.npz"
_FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)

FloatArray = np.ndarray[Any, np.dtype[np.float32]]
IntArray = np.ndarray[Any, np.dtype[np.int64]]


@dataclass(frozen=True)
class DigitsSet:
    """Model inputs ``[N, 64]`` float32 in [0, 1] and their labels ``[N]`` int64."""

    inputs: FloatArray
    labels: IntArray

    def __post_init__(self) -> None:
        _check(self.inputs, self.labels)

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class DigitsSplit:
    train: DigitsSet
    test: DigitsSet


def load_split() -> DigitsSplit:
    """The deterministic train/test split of the whole dataset (needs scikit-learn)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    inputs = (np.asarray(bunch.data, dtype=np.float64) / 16.0).astype(np.float32)
    labels = np.asarray(bunch.target, dtype=np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        inputs,
        labels,
        test_size=TEST_FRACTION,
        random_state=SPLIT_SEED,
        stratify=labels,
    )
    return DigitsSplit(
        train=DigitsSet(np.ascontiguousarray(x_train), np.ascontiguousarray(y_train)),
        test=DigitsSet(np.ascontiguousarray(x_test), np.ascontiguousarray(y_test)),
    )


def save_arrays(path: Path, arrays: dict[str, np.ndarray[Any, Any]]) -> None:
    """Write the ``.npz`` that ``np.load`` reads, byte-for-byte the same on every build.

    ``np.savez`` stamps each member with the current time; this writes the same uncompressed
    ``.npy`` members with a fixed timestamp instead, so a rebuild leaves the committed file alone.
    """
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            member = zipfile.ZipInfo(f"{name}.npy", date_time=_FIXED_ZIP_TIME)
            member.external_attr = 0o644 << 16
            with archive.open(member, "w") as handle:
                np.lib.format.write_array(handle, array, allow_pickle=False)


def save_test_set(test: DigitsSet, path: Path = TEST_SET_PATH) -> None:
    save_arrays(path, {"inputs": test.inputs, "labels": test.labels})


def load_test_set(path: Path | str = TEST_SET_PATH) -> DigitsSet:
    """The committed test split: ``inputs`` float32 ``[N, 64]`` and ``labels`` int64 ``[N]``."""
    with np.load(Path(path), allow_pickle=False) as archive:
        inputs = np.ascontiguousarray(archive["inputs"])
        labels = np.ascontiguousarray(archive["labels"])
    return DigitsSet(inputs, labels)


def _check(inputs: np.ndarray[Any, Any], labels: np.ndarray[Any, Any]) -> None:
    if inputs.dtype != np.float32 or inputs.ndim != 2 or inputs.shape[1] != NUM_FEATURES:
        raise ValueError(
            f"inputs must be float32 [N, {NUM_FEATURES}], got {inputs.dtype} {inputs.shape}"
        )
    if labels.dtype != np.int64 or labels.shape != (inputs.shape[0],):
        raise ValueError(
            f"labels must be int64 [{inputs.shape[0]}], got {labels.dtype} {labels.shape}"
        )
    if inputs.size and (float(inputs.min()) < 0.0 or float(inputs.max()) > 1.0):
        raise ValueError("inputs must lie in [0, 1]")
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= NUM_CLASSES):
        raise ValueError(f"labels must lie in [0, {NUM_CLASSES})")


def load_reference(version: str, path: Path | str = REFERENCE_PATH) -> FloatArray:
    """What version ``version`` itself answers for each test input: probabilities ``[N, 10]``.

    Computed by the build from the exported TorchScript, which TF Serving's export matches within
    1e-6: a served answer that differs from this by more than a float tolerance was corrupted on
    the way, whereas a wrong digit that matches it is the model's own mistake.
    """
    with np.load(Path(path), allow_pickle=False) as archive:
        key = f"v{version}"
        if key not in archive.files:
            known = ", ".join(sorted(archive.files))
            raise KeyError(f"no reference outputs for version {version!r} (have: {known})")
        outputs: FloatArray = np.ascontiguousarray(archive[key])
    return outputs
