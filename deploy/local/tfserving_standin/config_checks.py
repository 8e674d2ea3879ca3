"""The checks TF Serving's ServerCore::ReloadConfig makes, with its codes and messages.

In its order: the transition (model_config_list to model_config_list only), unique names and
absolute base paths, no model changing platform; then (after the new config is taken) the version
labels, and the platforms of every model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeAlias

from tensorflow_serving.config import model_server_config_pb2

from deploy.local.tfserving_standin.errors import Code, ServingError, invalid

SUPPORTED_PLATFORMS = ("tensorflow",)
Config: TypeAlias = model_server_config_pb2.ModelServerConfig


def check_transition(old: Config | None, new: Config) -> None:
    if old is None or old == new:
        return
    if old.WhichOneof("config") != "model_config_list" or (
        new.WhichOneof("config") != "model_config_list"
    ):
        raise ServingError(
            Code.FAILED_PRECONDITION,
            "Cannot transition to requested config. It is only legal to transition from one "
            "ModelConfigList to another.",
        )


def check_model_config_list(config: Config) -> None:
    names: set[str] = set()
    for entry in config.model_config_list.config:
        if entry.name in names:
            raise invalid(f"Illegal to list model {entry.name} multiple times in config list")
        names.add(entry.name)
    for entry in config.model_config_list.config:
        if not _absolute(entry.base_path):
            raise invalid(
                f"Expected model {entry.name} to have an absolute path or URI; got "
                f"base_path()={entry.base_path}"
            )


def _absolute(base_path: str) -> bool:
    return base_path.startswith("/") or "://" in base_path


def platform(entry: model_server_config_pb2.ModelConfig) -> str:
    if not entry.model_platform:
        raise invalid(
            "Illegal setting neither ModelServerConfig::model_type (deprecated) nor "
            f"ModelServerConfig::model_platform, model name is {entry.name}"
        )
    return str(entry.model_platform)


def check_no_platform_changes(old: Config | None, new: Config) -> None:
    if old is None:
        return
    before = {entry.name: platform(entry) for entry in old.model_config_list.config}
    for entry in new.model_config_list.config:
        if entry.name not in before:
            continue
        now = platform(entry)
        if now != before[entry.name]:
            raise invalid(
                f"Illegal to change a model's platform. For model {entry.name} platform was "
                f"{before[entry.name]} and new platform requested is {now}"
            )


def check_platforms_supported(config: Config) -> None:
    for entry in config.model_config_list.config:
        wanted = platform(entry)
        if wanted not in SUPPORTED_PLATFORMS:
            raise invalid(f"Model {entry.name} requests unsupported platform {wanted}")


def label_map(
    config: Config,
    current: Mapping[str, Mapping[str, int]],
    is_available: Callable[[str, int], bool],
    allow_unavailable: bool,
) -> dict[str, dict[str, int]]:
    """The new label -> version maps, refusing a label on a version that is not available.

    With ``--allow_version_labels_for_unavailable_models`` a new label (or one kept on its
    version) may point at a version still loading; moving an existing label still needs the
    version to be available.
    """
    labels: dict[str, dict[str, int]] = {}
    for entry in config.model_config_list.config:
        for label, version in entry.version_labels.items():
            existing = current.get(entry.name, {}).get(label)
            allowed = allow_unavailable and (existing is None or existing == version)
            if not allowed and not is_available(entry.name, version):
                raise ServingError(
                    Code.FAILED_PRECONDITION,
                    f"Request to assign label to version {version} of model {entry.name}, "
                    "which is not currently available for inference",
                )
            labels.setdefault(entry.name, {})[label] = version
    return labels
