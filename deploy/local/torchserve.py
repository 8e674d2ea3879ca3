"""Run a real TorchServe natively (Java frontend + Python workers), serving the ``digits`` model.

Everything TorchServe writes goes under ``run_dir``: its ``config.properties``, its logs
(``logs/``), and its temporary directory (``tmp/``), where it unpacks model archives, puts the
frontend's unix sockets to its workers, and where the ``torchserve`` launcher keeps the pid file
it uses to refuse a second server. Giving each run its own temporary directory is what lets
several TorchServes (a test's and ``make up``'s, say) run side by side.

Both archives in the store carry the model name ``digits``, with versions 1 and 2; listing both
in ``load_models`` registers both versions under the one name, and the first archive listed
becomes the default version (the one ``/predictions/digits`` runs).

Token authorization is on, as TorchServe's own default: TorchServe writes its keys to
``run_dir/key_file.json`` (its working directory), every call needs one, and the management API
may register models (``enable_model_api``) from the model store only (``allowed_urls`` matches no
remote URL).
"""

from __future__ import annotations

import json
import shutil
import sys
import urllib.error
import urllib.request
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.local.process import ManagedProcess
from gateway.backends.torchserve_keys import MANAGEMENT, bearer, parse_key_file

DEFAULT_MODELS: tuple[str, ...] = ("digits_v1.mar", "digits_v2.mar")
HOST = "127.0.0.1"
JVM_ARGS = "-Xmx512m"
KEY_FILE = "key_file.json"

# Linux limits a unix socket path to 107 bytes; the frontend's are "<tmp>/.ts.sock.<port>".
_MAX_SOCKET_PATH = 107
_SOCKET_SUFFIX = "/.ts.sock.65535"


@dataclass(frozen=True)
class TorchServePorts:
    inference: int = 8080
    management: int = 8081
    metrics: int = 8082
    grpc_inference: int = 7070
    grpc_management: int = 7071


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str


def key_file(run_dir: Path) -> Path:
    """Where the TorchServe of ``run_dir`` writes its keys: its working directory."""
    return run_dir.resolve() / KEY_FILE


def torchserve_process(
    run_dir: Path,
    model_store: Path,
    ports: TorchServePorts,
    models: Sequence[str] = DEFAULT_MODELS,
    token_auth: bool = True,
    token_expiration_min: float | None = None,
) -> ManagedProcess:
    """A not-yet-started TorchServe serving ``models`` (archive names in ``model_store``).

    Its ``ready`` check passes once every model version in those archives has a READY worker.
    With ``token_auth`` (the default) its keys are in :func:`key_file`, expiring after
    ``token_expiration_min`` (TorchServe's default: 60).
    """
    run_dir = run_dir.resolve()
    model_store = model_store.resolve()
    if not models:
        raise ValueError("torchserve_process needs at least one model archive")
    expected = [archive_model_version(model_store / archive) for archive in models]

    tmp_dir = run_dir / "tmp"
    if len(str(tmp_dir)) + len(_SOCKET_SUFFIX) > _MAX_SOCKET_PATH:
        raise ValueError(
            f"run_dir {run_dir} is too long: TorchServe's worker sockets under {tmp_dir} would "
            f"exceed the {_MAX_SOCKET_PATH}-byte limit on unix socket paths"
        )
    logs_dir = run_dir / "logs"
    for directory in (run_dir, tmp_dir, logs_dir):
        directory.mkdir(parents=True, exist_ok=True)
    config = run_dir / "config.properties"
    config.write_text(
        config_properties(model_store, ports, models, token_auth, token_expiration_min)
    )
    keys = key_file(run_dir) if token_auth else None
    if keys is not None:
        keys.unlink(missing_ok=True)  # a previous run's keys are no longer valid
    # The launcher refuses to start while the pid in its pid file is alive; a previous run's
    # file survives `make down`, and its number may since belong to any process.
    (tmp_dir / PID_FILE).unlink(missing_ok=True)

    management = f"http://{HOST}:{ports.management}"
    return ManagedProcess(
        name="torchserve",
        argv=[
            _torchserve_executable(),
            "--start",
            "--foreground",
            "--ncs",
            *([] if token_auth else ["--disable-token-auth"]),
            "--model-store",
            str(model_store),
            "--ts-config",
            str(config),
        ],
        run_dir=run_dir,
        ready=lambda: all(has_ready_worker(management, model, keys) for model in expected),
        env={
            # The launcher's pid file and TorchServe's java.io.tmpdir.
            "TMPDIR": str(tmp_dir),
            "TEMP": str(tmp_dir),
            # Read by TorchServe's log4j2.xml.
            "LOG_LOCATION": str(logs_dir),
            "METRICS_LOCATION": str(logs_dir),
        },
        cwd=run_dir,
    )


PID_FILE = ".model_server.pid"
"""Where TorchServe's launcher keeps its pid, under TMPDIR."""


def config_properties(
    model_store: Path,
    ports: TorchServePorts,
    models: Sequence[str],
    token_auth: bool = True,
    token_expiration_min: float | None = None,
) -> str:
    """TorchServe's ``config.properties``: loopback only, tokens on, one worker a model."""
    settings = {
        "inference_address": f"http://{HOST}:{ports.inference}",
        "management_address": f"http://{HOST}:{ports.management}",
        "metrics_address": f"http://{HOST}:{ports.metrics}",
        "grpc_inference_address": HOST,
        "grpc_inference_port": str(ports.grpc_inference),
        "grpc_management_address": HOST,
        "grpc_management_port": str(ports.grpc_management),
        "model_store": str(model_store),
        "load_models": ",".join(models),
        "default_workers_per_model": "1",
        "metrics_mode": "prometheus",
        "disable_token_authorization": "false" if token_auth else "true",
        "enable_model_api": "true",
        # Regular expressions of the URLs the management API may fetch archives from: only
        # file URLs inside the model store (archive names in the store need no URL at all).
        "allowed_urls": f"file://\\Q{model_store}\\E/.*",
        "install_py_dep_per_model": "false",
        "number_of_netty_threads": "2",
        "netty_client_threads": "2",
        "vmargs": JVM_ARGS,
    }
    if token_expiration_min is not None:
        settings["token_expiration_min"] = f"{token_expiration_min:g}"
    lines = ["# Written by deploy/local/torchserve.py for this run only."]
    lines += [f"{key}={_escape(value)}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def archive_model_version(archive: Path) -> ModelVersion:
    """The model name and version recorded in a ``.mar``'s manifest."""
    try:
        with zipfile.ZipFile(archive) as mar:
            manifest = json.loads(mar.read("MAR-INF/MANIFEST.json"))
        model = manifest["model"]
        return ModelVersion(name=str(model["modelName"]), version=str(model["modelVersion"]))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise ValueError(
            f"{archive} is not a readable TorchServe model archive: {error}"
        ) from error


def management_key(keys: Path | None) -> dict[str, str]:
    """The Authorization header of the management API, from the key file (none without one)."""
    if keys is None:
        return {}
    try:
        key = parse_key_file(keys.read_bytes(), 0.0).keys.get(MANAGEMENT)
    except (OSError, ValueError):
        return {}
    return bearer(key.value) if key is not None else {}


def has_ready_worker(
    management_url: str, model: ModelVersion, keys: Path | None = None, timeout: float = 1.0
) -> bool:
    """Whether ``GET /models/<name>/<version>`` lists a worker in state READY."""
    url = f"{management_url}/models/{model.name}/{model.version}"
    request = urllib.request.Request(url, headers=management_key(keys))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            described: Any = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return False
    if not isinstance(described, list):
        return False
    return any(
        isinstance(entry, dict)
        and str(entry.get("modelVersion")) == model.version
        and any(
            isinstance(worker, dict) and worker.get("status") == "READY"
            for worker in entry.get("workers") or []
        )
        for entry in described
    )


def _torchserve_executable() -> str:
    """The ``torchserve`` launcher installed beside this interpreter, else the one on PATH."""
    beside = Path(sys.executable).with_name("torchserve")
    if beside.is_file():
        return str(beside)
    found = shutil.which("torchserve")
    if found is None:
        raise FileNotFoundError("torchserve is not installed (pip install torchserve)")
    return found


def _escape(value: str) -> str:
    # Java properties treat backslashes as escapes.
    return value.replace("\\", "\\\\")
