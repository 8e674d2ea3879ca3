"""The trained networks as plain dense layers: what every export after TorchScript is built from.

numpy only, so that it imports under a runtime image's framework venv too (deploy/image_python.py):
the build hands the weights to TF Serving's TensorFlow as an ``.npz`` written here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FloatArray = np.ndarray[Any, np.dtype[np.float32]]


@dataclass(frozen=True)
class Layer:
    """One dense layer in PyTorch's layout: ``y = x @ weight.T + bias``; ReLU between layers,
    softmax after the last."""

    weight: FloatArray  # [out, in]
    bias: FloatArray  # [out]


def save_layers(path: Path, networks: Mapping[str, Sequence[Layer]]) -> None:
    """Every version's layers in one ``.npz``: ``v<version>.weight<i>`` and ``.bias<i>``."""
    arrays: dict[str, FloatArray] = {}
    for version, layers in networks.items():
        for index, layer in enumerate(layers):
            arrays[f"v{version}.weight{index}"] = layer.weight
            arrays[f"v{version}.bias{index}"] = layer.bias
    np.savez(path, **arrays)  # type: ignore[arg-type]


def load_layers(path: Path) -> dict[str, list[Layer]]:
    """What ``save_layers`` wrote, each version's layers in order."""
    networks: dict[str, list[Layer]] = {}
    with np.load(path, allow_pickle=False) as archive:
        versions = sorted({name[1:].split(".", 1)[0] for name in archive.files})
        for version in versions:
            layers = networks.setdefault(version, [])
            while f"v{version}.weight{len(layers)}" in archive.files:
                index = len(layers)
                layers.append(
                    Layer(
                        weight=archive[f"v{version}.weight{index}"].astype(np.float32),
                        bias=archive[f"v{version}.bias{index}"].astype(np.float32),
                    )
                )
    return networks
