"""Launch TensorFlow Serving for the local stack: the real binary when installed, else the stand-in.

``tensorflow_model_server`` cannot be installed everywhere (there is no wheel for it), so when it is
not on PATH the launcher runs ``deploy.local.tfserving_standin`` instead: a Python server that runs
the same SavedModels with TensorFlow and speaks the same gRPC and REST APIs. Both read the same
text-format ``ModelServerConfig``, here parsed and written with protobuf's own text format over the
gateway's wire-compatible copy of the message (``gateway/wire/tensorflow_serving_config.proto``).

This module must not import TensorFlow: the stack starts it in processes that never need TF.
"""

from __future__ import annotations

import json
import shutil
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from deploy.local.process import ManagedProcess
from gateway.runtimes.model_server_config import (
    TENSORFLOW_PLATFORM,
    parse_monitoring_config,
    read_model_server_config,
    render,
)
from gateway.wire.tensorflow_serving_config_pb2 import ModelServerConfig, MonitoringConfig

STANDIN_NAME = "TF Serving stand-in"
REAL_BINARY = "tensorflow_model_server"
PROMETHEUS_PATH = "/monitoring/prometheus/metrics"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_LABELS: Mapping[str, int] = MappingProxyType({"stable": 1, "canary": 2})


@dataclass(frozen=True)
class ModelEntry:
    """One ``config`` block of a ``model_config_list``; no versions means every version on disk."""

    name: str
    base_path: Path
    versions: Sequence[int] = ()
    labels: Mapping[str, int] = field(default_factory=dict)


def render_model_config(entries: Sequence[ModelEntry]) -> str:
    """Text-format ``ModelServerConfig`` for these models, with absolute base paths."""
    config = ModelServerConfig()
    config.model_config_list.SetInParent()
    for entry in entries:
        model = config.model_config_list.config.add(
            name=entry.name,
            base_path=str(entry.base_path.resolve()),
            model_platform=TENSORFLOW_PLATFORM,
        )
        if entry.versions:
            model.model_version_policy.specific.versions.extend(entry.versions)
        else:
            model.model_version_policy.all.SetInParent()
        model.version_labels.update(entry.labels)
    return render(config)


def write_model_config(
    path: Path,
    base_path: Path,
    model_name: str = "digits",
    versions: Sequence[int] = (1, 2),
    labels: Mapping[str, int] = DEFAULT_LABELS,
) -> Path:
    """Write a one-model config file; TF Serving wants an absolute ``base_path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = ModelEntry(model_name, base_path, tuple(versions), dict(labels))
    path.write_text(render_model_config([entry]))
    return path


def write_monitoring_config(path: Path) -> Path:
    """Write a ``MonitoringConfig`` that turns on Prometheus metrics at the usual path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    monitoring = MonitoringConfig()
    monitoring.prometheus_config.enable = True
    monitoring.prometheus_config.path = PROMETHEUS_PATH
    path.write_text(render(monitoring))
    return path


def read_monitoring_config(path: Path) -> MonitoringConfig:
    """A text-format ``MonitoringConfig`` file (what ``--monitoring_config_file`` names)."""
    return parse_monitoring_config(path.read_text(), str(path))


@dataclass(frozen=True)
class ConfiguredModel:
    """What a model config asks for, enough to tell when the server has loaded it."""

    name: str
    base_path: Path
    policy: str  # "latest", "all" or "specific"
    versions: tuple[int, ...]  # the listed ones for "specific", else empty
    num_latest: int = 1

    def expected_versions(self) -> set[int]:
        """Versions the server should report AVAILABLE, looking at the disk for all/latest."""
        if self.policy == "specific":
            return set(self.versions)
        on_disk = sorted(_numeric_subdirs(self.base_path))
        return set(on_disk if self.policy == "all" else on_disk[-self.num_latest :])


def _numeric_subdirs(base_path: Path) -> list[int]:
    if not base_path.is_dir():
        return []
    # Version directories only, named in ASCII digits, as the server itself reads them.
    return [
        int(child.name)
        for child in base_path.iterdir()
        if child.is_dir() and child.name.isascii() and child.name.isdigit()
    ]


def configured_models(model_config_file: Path) -> list[ConfiguredModel]:
    """The models (and version policies) of a text-format ``ModelServerConfig`` file."""
    models: list[ConfiguredModel] = []
    for config in read_model_server_config(model_config_file).model_config_list.config:
        policy = config.model_version_policy
        kind = policy.WhichOneof("policy_choice") or "latest"
        models.append(
            ConfiguredModel(
                name=config.name,
                base_path=Path(config.base_path),
                policy=kind,
                versions=tuple(policy.specific.versions) if kind == "specific" else (),
                num_latest=max(policy.latest.num_versions, 1),
            )
        )
    return models


def available_versions(rest_url: str, model_name: str, timeout: float = 1.0) -> set[int]:
    """Versions that ``GET /v1/models/<name>`` reports AVAILABLE; empty if it cannot be asked."""
    try:
        with urllib.request.urlopen(f"{rest_url}/v1/models/{model_name}", timeout=timeout) as r:
            status = json.loads(r.read())
    except (urllib.error.URLError, OSError, ValueError):
        return set()
    return {
        int(entry["version"])
        for entry in status.get("model_version_status", [])
        if entry.get("state") == "AVAILABLE"
    }


def models_ready(rest_url: str, models: Sequence[ConfiguredModel]) -> bool:
    for model in models:
        expected = model.expected_versions()
        available = available_versions(rest_url, model.name)
        if not available or not expected <= available:
            return False
    return True


def uses_real_tfserving() -> bool:
    return shutil.which(REAL_BINARY) is not None


def _server_flags(
    model_config_file: Path, grpc_port: int, rest_port: int, monitoring_config_file: Path | None
) -> list[str]:
    flags = [
        f"--port={grpc_port}",
        f"--rest_api_port={rest_port}",
        f"--model_config_file={model_config_file.resolve()}",
        # The real server refuses labels of versions still loading when it reads the config at
        # start-up, which is always the case there; the stand-in takes the flag too.
        "--allow_version_labels_for_unavailable_models=true",
        # A version that fails to load ends at once (state END, with its error) instead of being
        # retried five times a minute apart: a deploy of a bad version fails fast.
        "--max_num_load_retries=0",
    ]
    if monitoring_config_file is not None:
        flags.append(f"--monitoring_config_file={monitoring_config_file.resolve()}")
    return flags


def tfserving_process(
    run_dir: Path,
    model_config_file: Path,
    grpc_port: int = 8500,
    rest_port: int = 8501,
    monitoring_config_file: Path | None = None,
) -> ManagedProcess:
    """TF Serving (real or stand-in) on these ports, ready once every configured version is up."""
    if rest_port <= 0:
        raise ValueError("the readiness check needs the REST API: give a rest_port")
    flags = _server_flags(model_config_file, grpc_port, rest_port, monitoring_config_file)
    real = shutil.which(REAL_BINARY)
    if real is not None:
        argv = [real, *flags]
    else:
        argv = [sys.executable, "-m", "deploy.local.tfserving_standin", *flags]
    return ManagedProcess(
        name="tfserving",
        argv=argv,
        run_dir=run_dir,
        ready=_readiness(f"http://127.0.0.1:{rest_port}", configured_models(model_config_file)),
        cwd=REPO_ROOT,
    )


def _readiness(rest_url: str, models: Sequence[ConfiguredModel]) -> Callable[[], bool]:
    def ready() -> bool:
        return models_ready(rest_url, models)

    return ready
