"""The runtime images' interpreters and frameworks, here: what runs in them is checked with them.

Two kinds of thing run inside someone else's image, and each is checked with that image's
versions rather than the gateway venv's:

- **our code**: the official ``pytorch/torchserve:0.12.0-*`` images run Python 3.9 (serve
  v0.12.0 ``docker/Dockerfile``: ``PYTHON_VERSION=3.9``) with numpy 1.24.3, PyYAML 6.0.1 and
  torch 2.4.0 (``requirements/torch_common.txt``, ``torch_cpu_linux.txt``); our handler modules
  and the TorchServe healthcheck execute there, not in the gateway's Python 3.11;
- **our artefacts**: ``tensorflow/serving:2.20.0`` is built on TensorFlow 2.20 (its WORKSPACE
  pins that release's commit) and loads the SavedModels with it;
  ``nvcr.io/nvidia/tritonserver:26.08-py3`` loads the ONNX graphs with ONNX Runtime 1.28.0
  (Triton's ``docs/introduction/compatibility.md``, "ONNX Runtime Versions", and ``build.py``'s
  ``ort_version`` on its r26.08 branch). TensorFlow
  reads SavedModels of its own and older releases, not newer ones, so the build *exports* the
  SavedModels with TF Serving's TensorFlow too (``model_store/tfserving_export.py``).

Commands:

- ``python -m deploy.image_python check`` runs vermin over our files in those images: nothing may
  need a Python newer than the image's (vermin's ``union-types`` feature catches
  ``isinstance(x, A | B)``, which imports fine and fails on the first request).
- ``python -m deploy.image_python venv`` makes ``.venv-images/<image>`` for each: the TorchServe
  image's Python with its numpy and PyYAML and TorchServe's own ``ts`` package (torch is left
  out: PyPI's 3.9 wheels are CUDA builds of several GB, so the torch-free logic lives in
  ``digits_protocol.py``); TF Serving's TensorFlow (``tensorflow-cpu``, the same release without
  CUDA); Triton's ONNX Runtime. Each is created once and then only checked against its stamp.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENVS = REPO / ".venv-images"


@dataclass(frozen=True)
class ImagePython:
    """One image as far as we run things under its versions: the images it stands for, the
    interpreter of its venv here (the image's own where our code runs in it; for an image without
    Python of ours, one its framework's wheels support), the packages (at the image's versions)
    and our files that execute inside it."""

    name: str
    images: tuple[str, ...]
    python: str
    packages: tuple[str, ...]
    no_deps: tuple[str, ...] = ()
    files: tuple[Path, ...] = ()

    @property
    def venv(self) -> Path:
        return VENVS / self.name

    @property
    def interpreter(self) -> Path:
        return self.venv / "bin" / "python"


TORCHSERVE = ImagePython(
    name="torchserve",
    images=("pytorch/torchserve:0.12.0-cpu", "pytorch/torchserve:0.12.0-gpu"),
    python="3.9",
    packages=("numpy==1.24.3", "PyYAML==6.0.1"),
    # TorchServe's wheel pins torch-free dependencies we do not need to run the envelope.
    no_deps=("torchserve==0.12.0",),
    files=(
        REPO / "model_store" / "torchserve" / "digits_handler.py",
        REPO / "model_store" / "torchserve" / "digits_protocol.py",
        REPO / "deploy" / "torchserve" / "healthcheck.py",
        REPO / "deploy" / "k8s" / "base" / "torchserve" / "healthcheck.py",
    ),
)
TFSERVING = ImagePython(
    name="tfserving",
    images=("tensorflow/serving:2.20.0", "tensorflow/serving:2.20.0-gpu"),
    python="3.11",
    packages=("tensorflow-cpu==2.20.0",),
)
TRITON = ImagePython(
    name="triton",
    images=("nvcr.io/nvidia/tritonserver:26.08-py3",),
    python="3.12",  # the image's (Ubuntu 24.04), though the ONNX Runtime backend is C++
    packages=("onnxruntime==1.28.0",),
)
IMAGES = (TORCHSERVE, TFSERVING, TRITON)


class ImagePythonError(RuntimeError):
    """The interpreter or a package could not be found; the message says what to do."""


def find_python(version: str) -> str:
    """pyenv's build of ``pythonX.Y``, else one on PATH that runs (pyenv's shims may not)."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [str(p) for p in sorted(root.glob(f"versions/{version}.*/bin/python{version}"))]
    on_path = shutil.which(f"python{version}")
    for candidate in [*reversed(candidates), *([on_path] if on_path else [])]:
        probe = subprocess.run([candidate, "--version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return candidate
    raise ImagePythonError(
        f"no Python {version} found (pyenv or PATH); install it, e.g. `pyenv install {version}`"
    )


def vermin_command(image: ImagePython, files: list[Path] | None = None) -> list[str]:
    vermin = Path(sys.executable).parent / "vermin"
    return [
        str(vermin),
        "--no-tips",
        "--violations",
        "--feature",
        "union-types",
        f"-t={image.python}-",
        *(str(path) for path in (files if files is not None else image.files)),
    ]


def check(image: ImagePython, files: list[Path] | None = None) -> subprocess.CompletedProcess[str]:
    """vermin over the image's files (or ``files``); exit status 0 when all run on its Python."""
    return subprocess.run(vermin_command(image, files), capture_output=True, text=True, check=False)


def make_venv(image: ImagePython) -> Path:
    """Create (or top up) the image's venv; quiet and quick when it is already complete."""
    stamp = image.venv / ".installed"
    wanted = "\n".join((*image.packages, *image.no_deps))
    if stamp.is_file() and stamp.read_text() == wanted:
        return image.interpreter
    if not image.interpreter.exists():
        subprocess.run([find_python(image.python), "-m", "venv", str(image.venv)], check=True)
    pip = [str(image.interpreter), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, *image.packages], check=True)
    if image.no_deps:
        subprocess.run([*pip, "--no-deps", *image.no_deps], check=True)
    stamp.write_text(wanted)
    return image.interpreter


def run_module(
    image: ImagePython, module: str, args: Sequence[str], timeout_s: float = 300
) -> subprocess.CompletedProcess[str]:
    """``python -m module args`` under the image's venv, from the repository root (so that
    ``model_store`` imports), with its output captured; the venv must exist (``make_venv``)."""
    if not image.interpreter.exists():
        raise ImagePythonError(
            f"{image.interpreter} is missing: `make image-pythons` (python -m deploy.image_python"
            " venv) creates it"
        )
    return subprocess.run(
        [str(image.interpreter), "-m", module, *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout_s,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.image_python", description=__doc__)
    parser.add_argument("command", choices=["check", "venv"])
    args = parser.parse_args(argv)
    status = 0
    for image in IMAGES:
        if args.command == "venv":
            make_venv(image)
            continue
        if not image.files:
            continue
        result = check(image)
        if result.returncode != 0:
            print(f"{image.name} image (Python {image.python}):", file=sys.stderr)
            print(result.stdout.strip(), file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
