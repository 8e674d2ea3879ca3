"""Run a real MLServer natively, serving ``digits`` from the TorchServe archives' TorchScript.

MLServer pins its own fastapi, so it lives in its own virtual environment, ``.venv-mlserver``
(``make mlserver``, from ``requirements-mlserver.lock``). Each run gets its own model repository
under ``run_dir``: ``settings.json`` (loopback, the given ports, inference in the server process)
and one ``digits/<N>/model-settings.json`` per version, whose ``uri`` is that version's ``.mar``
and whose runtime is ``model_store.mlserver.digits_runtime.DigitsRuntime``. ``add_version`` puts
another version into a running server through MLServer's model repository API.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from deploy.local.process import ManagedProcess, http_ok, port_open
from model_store.digits import INPUT_NAME, NUM_CLASSES, NUM_FEATURES, OUTPUT_NAME

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".venv-mlserver"
MODEL_NAME = "digits"
DEFAULT_VERSIONS: tuple[str, ...] = ("1", "2")
HOST = "127.0.0.1"
RUNTIME = "model_store.mlserver.digits_runtime.DigitsRuntime"
PLATFORM = "pytorch_torchscript"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # the gateway's default max_request_bytes


@dataclass(frozen=True)
class MLServerPorts:
    http: int = 9000
    grpc: int = 9001
    metrics: int = 9002


def mlserver_process(
    run_dir: Path,
    model_store: Path,
    ports: MLServerPorts,
    versions: Sequence[str] = DEFAULT_VERSIONS,
) -> ManagedProcess:
    """A not-yet-started MLServer with ``versions`` of digits; ready once each one is."""
    run_dir = run_dir.resolve()
    repository = run_dir / "models"
    repository.mkdir(parents=True, exist_ok=True)
    (repository / "settings.json").write_text(json.dumps(server_settings(run_dir, ports), indent=2))
    for version in versions:
        write_model_settings(repository, model_store.resolve(), version)
    base = f"http://{HOST}:{ports.http}"
    return ManagedProcess(
        name="mlserver",
        argv=[str(executable()), "start", str(repository)],
        run_dir=run_dir,
        ready=lambda: (
            all(version_ready(base, version) for version in versions)
            and port_open(HOST, ports.grpc)
        ),
        # The runtime imports model_store from this checkout.
        env={"PYTHONPATH": str(REPO)},
        cwd=run_dir,
    )


def server_settings(run_dir: Path, ports: MLServerPorts) -> dict[str, object]:
    return {
        "host": HOST,
        "http_port": ports.http,
        "grpc_port": ports.grpc,
        "metrics_port": ports.metrics,
        # Inference in the server process: the model takes microseconds, and a worker pool
        # would add a process hop (and ~300 MB) per request path on a 2-core machine.
        "parallel_workers": 0,
        "debug": False,  # no access log line per request
        "grpc_max_message_length": MAX_MESSAGE_BYTES,
        "metrics_dir": str(run_dir / "metrics"),
        "environments_dir": str(run_dir / "envs"),
    }


def model_settings(model_store: Path, version: str) -> dict[str, object]:
    return {
        "name": MODEL_NAME,
        "implementation": RUNTIME,
        "platform": PLATFORM,
        "inputs": [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, NUM_FEATURES]}],
        "outputs": [{"name": OUTPUT_NAME, "datatype": "FP32", "shape": [-1, NUM_CLASSES]}],
        "parameters": {
            "version": version,
            "uri": str(model_store / "torchserve" / f"digits_v{version}.mar"),
        },
    }


def write_model_settings(repository: Path, model_store: Path, version: str) -> Path:
    archive = model_store / "torchserve" / f"digits_v{version}.mar"
    if not archive.is_file():
        raise FileNotFoundError(f"no archive for digits version {version}: {archive}")
    folder = repository / MODEL_NAME / version  # Triton's layout, which MLServer accepts
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model-settings.json"
    path.write_text(json.dumps(model_settings(model_store, version), indent=2))
    return path


def add_version(run_dir: Path, model_store: Path, http_port: int, version: str) -> None:
    """Load one more version into a running MLServer (its repository API reloads ``digits``
    from the repository, which now holds this version too)."""
    write_model_settings(run_dir.resolve() / "models", model_store.resolve(), version)
    url = f"http://{HOST}:{http_port}/v2/repository/models/{MODEL_NAME}/load"
    request = urllib.request.Request(url, data=b"", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
    except urllib.error.HTTPError as error:
        raise RuntimeError(f"MLServer refused to load digits {version}: {error.read()!r}") from None


def version_ready(base_url: str, version: str) -> bool:
    return http_ok(f"{base_url}/v2/models/{MODEL_NAME}/versions/{version}/ready")


def executable() -> Path:
    path = VENV / "bin" / "mlserver"
    if not path.is_file():
        raise FileNotFoundError(f"MLServer is not installed: no {path} (run `make mlserver`)")
    return path
