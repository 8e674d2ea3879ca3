"""The SavedModels, exported by the TensorFlow release that TF Serving's image is built on.

Runs under that release's venv (deploy/image_python.py, ``tfserving``), never the gateway's:
TensorFlow loads SavedModels written by its own and older releases, not by newer ones, so the
artefacts must not come from the gateway venv's newer TensorFlow.

    python -m model_store.tfserving_export LAYERS.npz OUT_DIR

writes ``OUT_DIR/<version>/`` for every version in ``LAYERS.npz`` (model_store/layers.py): the
same network in plain TensorFlow ops, signature ``serving_default``, ``input`` float32
``[None, 64]`` -> ``probabilities`` float32 ``[None, 10]``; then prints the TensorFlow version.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from model_store.digits import INPUT_NAME, NUM_FEATURES, OUTPUT_NAME
from model_store.layers import Layer, load_layers


def export(layers: Sequence[Layer], target: Path) -> None:
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
        def serve(self, input: Any) -> dict[str, Any]:
            x = input
            last = len(self.kernels) - 1
            for index, (kernel, bias) in enumerate(zip(self.kernels, self.biases, strict=True)):
                x = tf.matmul(x, kernel) + bias
                if index < last:
                    x = tf.nn.relu(x)
            return {OUTPUT_NAME: tf.nn.softmax(x, axis=-1)}

    module = TfDigits()
    tf.saved_model.save(module, str(target), signatures={"serving_default": module.serve})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_store.tfserving_export")
    parser.add_argument("layers", type=Path)
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)
    import tensorflow as tf

    for version, layers in load_layers(args.layers).items():
        export(layers, args.out_dir / version)
    print(tf.__version__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
