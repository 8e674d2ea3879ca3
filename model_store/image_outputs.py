"""What the served artefacts answer, computed by a runtime image's own framework release.

Runs under one of deploy/image_python.py's venvs, never the gateway's, and imports nothing but
numpy and that framework:

    python -m model_store.image_outputs tensorflow  ROOT INPUTS.npz OUT.npz VERSION...
    python -m model_store.image_outputs onnxruntime ROOT INPUTS.npz OUT.npz VERSION...

``tensorflow`` loads the SavedModel ``ROOT/<version>/`` and calls its ``serving_default``
signature, as TF Serving does; ``onnxruntime`` opens ``ROOT/<version>/model.onnx`` in an
InferenceSession on the CPU, as Triton's ONNX Runtime backend does. ``OUT.npz`` gets each
version's ``probabilities`` for ``INPUTS.npz``'s ``inputs`` as ``v<version>``; the framework's
version is printed as JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from model_store.digits import INPUT_NAME, OUTPUT_NAME

FloatArray = np.ndarray[Any, np.dtype[np.float32]]


def tensorflow(root: Path, version: str, inputs: FloatArray) -> FloatArray:
    import tensorflow as tf

    serve = tf.saved_model.load(str(root / version)).signatures["serving_default"]
    result: FloatArray = serve(**{INPUT_NAME: tf.constant(inputs)})[OUTPUT_NAME].numpy()
    return result


def onnxruntime(root: Path, version: str, inputs: FloatArray) -> FloatArray:
    import onnxruntime as ort

    session = ort.InferenceSession(
        str(root / version / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    (result,) = session.run([OUTPUT_NAME], {INPUT_NAME: inputs})
    return np.asarray(result)


def framework_version(framework: str) -> str:
    if framework == "tensorflow":
        import tensorflow as tf

        return str(tf.__version__)
    import onnxruntime as ort

    return str(ort.__version__)


FRAMEWORKS: dict[str, Callable[[Path, str, FloatArray], FloatArray]] = {
    "tensorflow": tensorflow,
    "onnxruntime": onnxruntime,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_store.image_outputs")
    parser.add_argument("framework", choices=sorted(FRAMEWORKS))
    parser.add_argument("root", type=Path)
    parser.add_argument("inputs", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("versions", nargs="+")
    args = parser.parse_args(argv)
    with np.load(args.inputs, allow_pickle=False) as archive:
        inputs = np.ascontiguousarray(archive["inputs"], dtype=np.float32)
    run = FRAMEWORKS[args.framework]
    outputs = {f"v{version}": run(args.root, version, inputs) for version in args.versions}
    np.savez(args.out, **outputs)  # type: ignore[arg-type]
    print(json.dumps({"framework": args.framework, "version": framework_version(args.framework)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
