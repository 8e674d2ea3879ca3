"""Code that runs inside someone else's image, checked against that image's Python.

The official ``pytorch/torchserve:0.12.0-*`` images run Python 3.9 (serve v0.12.0
``docker/Dockerfile``: ``PYTHON_VERSION=3.9``) with numpy 1.24.3, PyYAML 6.0.1 and torch 2.4.0
(``requirements/torch_common.txt``, ``torch_cpu_linux.txt``). Our handler modules and the
TorchServe healthcheck execute there, not in the gateway's Python 3.11.

- ``python -m deploy.image_python check`` runs vermin over those files: nothing may need a Python
  newer than the image's (vermin's ``union-types`` feature catches ``isinstance(x, A | B)``, which
  imports fine and fails on the first request).
- ``python -m deploy.image_python venv`` makes ``.venv-images/torchserve``: that Python with the
  image's numpy and PyYAML and TorchServe's own ``ts`` package, so the tests can run the handler's
  request and response logic on the interpreter it will meet. torch is left out: PyPI's 3.9 wheels
  are CUDA builds of several GB; the torch-free logic lives in ``digits_protocol.py`` for that
  reason.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENVS = REPO / ".venv-images"


@dataclass(frozen=True)
class ImagePython:
    """One image's interpreter: its version, the packages we need from it, and our files in it."""

    name: str
    python: str
    packages: tuple[str, ...]
    no_deps: tuple[str, ...]
    files: tuple[Path, ...]

    @property
    def venv(self) -> Path:
        return VENVS / self.name

    @property
    def interpreter(self) -> Path:
        return self.venv / "bin" / "python"


TORCHSERVE = ImagePython(
    name="torchserve",
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
IMAGES = (TORCHSERVE,)


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
    subprocess.run([*pip, "--no-deps", *image.no_deps], check=True)
    stamp.write_text(wanted)
    return image.interpreter


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.image_python", description=__doc__)
    parser.add_argument("command", choices=["check", "venv"])
    args = parser.parse_args(argv)
    status = 0
    for image in IMAGES:
        if args.command == "venv":
            make_venv(image)
            continue
        result = check(image)
        if result.returncode != 0:
            print(f"{image.name} image (Python {image.python}):", file=sys.stderr)
            print(result.stdout.strip(), file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
