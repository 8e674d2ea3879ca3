"""The configured models: the versions each one's version policy selects, and its labels."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tensorflow_serving.config import model_server_config_pb2

from deploy.local.tfserving_standin.errors import StartupError
from deploy.local.tfserving_standin.servables import Servable, load_servable


@dataclass(frozen=True)
class Model:
    name: str
    versions: Mapping[int, Servable]
    labels: Mapping[str, int]


def _version_dirs(name: str, base_path: Path) -> dict[int, Path]:
    if not base_path.is_dir():
        raise StartupError(f"Could not find base path {base_path} for servable {name}")
    return {
        int(d.name): d
        for d in base_path.iterdir()
        if d.is_dir() and d.name.isascii() and d.name.isdigit()
    }


def _select_versions(
    config: model_server_config_pb2.ModelConfig, found: Mapping[int, Path]
) -> list[int]:
    policy = config.model_version_policy
    kind = policy.WhichOneof("policy_choice")
    if kind == "all":
        chosen = sorted(found)
    elif kind == "specific":
        chosen = sorted(set(policy.specific.versions))
        missing = [v for v in chosen if v not in found]
        if missing:
            raise StartupError(
                f"Model {config.name}: versions {missing} not found under {config.base_path}"
            )
    else:
        chosen = sorted(found)[-max(policy.latest.num_versions, 1) :]
    if not chosen:
        raise StartupError(f"No versions of servable {config.name} found under {config.base_path}")
    return chosen


def load_model(
    config: model_server_config_pb2.ModelConfig, allow_unavailable_labels: bool
) -> Model:
    if config.model_platform not in ("", "tensorflow"):
        raise StartupError(f"Model {config.name}: platform {config.model_platform!r} not supported")
    found = _version_dirs(config.name, Path(config.base_path))
    versions = {v: load_servable(config.name, v, found[v]) for v in _select_versions(config, found)}
    labels = dict(config.version_labels)
    for version in labels.values():
        if version not in versions and not allow_unavailable_labels:
            raise StartupError(
                f"Request to assign label to version {version} of model {config.name}, "
                "which is not currently available for inference"
            )
    return Model(config.name, versions, labels)


def load_models(
    config: model_server_config_pb2.ModelServerConfig, allow_unavailable_labels: bool
) -> dict[str, Model]:
    """Every model of the config's ``model_config_list``, by name."""
    models: dict[str, Model] = {}
    for model_config in config.model_config_list.config:
        if model_config.name in models:
            raise StartupError(
                f"Illegal to list model {model_config.name} multiple times in config"
            )
        models[model_config.name] = load_model(model_config, allow_unavailable_labels)
    if not models:
        raise StartupError("the model config lists no models")
    return models
