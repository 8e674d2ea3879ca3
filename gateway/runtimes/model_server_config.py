"""TF Serving's ``ModelServerConfig``: text format in and out, and the edits a deploy makes.

Every edit returns a new message and leaves its argument alone, so a caller can keep the config
it had (to roll back to) beside the one it sends. Only ``model_config_list`` configs are handled:
``HandleReloadConfigRequest`` accepts nothing else.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from google.protobuf import text_format

from gateway.wire.tensorflow_serving_config_pb2 import (
    ModelConfig,
    ModelServerConfig,
    MonitoringConfig,
)

TENSORFLOW_PLATFORM = "tensorflow"


class ModelConfigError(ValueError):
    """A ModelServerConfig (file or edit) the gateway cannot use; the message says why."""


def parse_model_server_config(text: str, source: str = "<text>") -> ModelServerConfig:
    """A text-format ``ModelServerConfig``; fields outside the gateway's subset are refused."""
    config = ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as error:
        raise ModelConfigError(
            f"{source}: not a ModelServerConfig the gateway can hold: {error}"
        ) from None
    return config


def parse_monitoring_config(text: str, source: str = "<text>") -> MonitoringConfig:
    config = MonitoringConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as error:
        raise ModelConfigError(f"{source}: not a MonitoringConfig: {error}") from None
    return config


def read_model_server_config(path: str | Path) -> ModelServerConfig:
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise ModelConfigError(f"cannot read {path}: {error.strerror or error}") from None
    return parse_model_server_config(text, str(path))


def render(config: ModelServerConfig | MonitoringConfig) -> str:
    return text_format.MessageToString(config)


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` in one rename: a reader sees the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def model_entry(config: ModelServerConfig, name: str) -> ModelConfig | None:
    for entry in config.model_config_list.config:
        if entry.name == name:
            return entry
    return None


def specific_versions(entry: ModelConfig) -> list[int] | None:
    """The versions a ``specific`` policy lists, or None for ``latest`` / ``all`` (disk-driven)."""
    policy = entry.model_version_policy
    if policy.WhichOneof("policy_choice") != "specific":
        return None
    return sorted(set(policy.specific.versions))


def _copy(config: ModelServerConfig) -> ModelServerConfig:
    if config.WhichOneof("config") == "custom_model_config":
        raise ModelConfigError("a custom_model_config cannot be edited: only model_config_list")
    copied = ModelServerConfig()
    copied.CopyFrom(config)
    copied.model_config_list.SetInParent()
    return copied


def with_version(
    config: ModelServerConfig,
    name: str,
    version: int,
    base_path: str | None = None,
    serving: Iterable[int] = (),
) -> ModelServerConfig:
    """``config`` with ``version`` of model ``name`` in a ``specific`` version policy.

    A model not in the config yet needs ``base_path``. A model under ``latest`` or ``all`` is
    pinned to the versions it is ``serving`` now plus the new one: those policies follow the disk,
    and a deploy must not load or unload anything else by accident.
    """
    updated = _copy(config)
    entry = model_entry(updated, name)
    if entry is None:
        if not base_path:
            raise ModelConfigError(
                f"model {name!r} is not in TF Serving's config: give the base path of its "
                "SavedModel versions"
            )
        entry = updated.model_config_list.config.add(
            name=name, base_path=base_path, model_platform=TENSORFLOW_PLATFORM
        )
        pinned: set[int] = set()
    else:
        if base_path and base_path.rstrip("/") != entry.base_path.rstrip("/"):
            raise ModelConfigError(
                f"model {name!r} is served from {entry.base_path}, not {base_path}: TF Serving "
                "has one base path per model (put the version directory there)"
            )
        listed = specific_versions(entry)
        pinned = set(listed) if listed is not None else set(serving)
    entry.model_version_policy.specific.versions[:] = sorted(pinned | {version})
    return updated


def without_version(config: ModelServerConfig, name: str, version: int) -> ModelServerConfig:
    """``config`` without ``version`` of ``name``; a model left with no version is removed.

    Labels still pointing at the version are refused here (drop or move them first): TF Serving
    would keep serving a label whose version is gone.
    """
    updated = _copy(config)
    entry = model_entry(updated, name)
    if entry is None:
        return updated
    listed = specific_versions(entry)
    if listed is None:
        policy = entry.model_version_policy.WhichOneof("policy_choice") or "latest"
        raise ModelConfigError(
            f"model {name!r} follows the disk ({policy} policy): the gateway only removes "
            "versions listed in a specific policy"
        )
    labels = labels_of(entry, version)
    if labels:
        raise ModelConfigError(
            f"version {version} of {name!r} carries TF Serving labels {', '.join(labels)}"
        )
    remaining = [kept for kept in listed if kept != version]
    if remaining:
        entry.model_version_policy.specific.versions[:] = remaining
    else:
        models = updated.model_config_list.config
        index = next(i for i, candidate in enumerate(models) if candidate.name == name)
        del models[index]
    return updated


def labels_of(entry: ModelConfig, version: int) -> list[str]:
    return sorted(label for label, labelled in entry.version_labels.items() if labelled == version)


def with_labels(
    config: ModelServerConfig, name: str, labels: Mapping[str, int | None]
) -> ModelServerConfig:
    """``config`` with these labels of ``name`` set (a version) or removed (None)."""
    updated = _copy(config)
    entry = model_entry(updated, name)
    if entry is None:
        raise ModelConfigError(f"model {name!r} is not in TF Serving's config")
    for label, version in labels.items():
        if version is None:
            entry.version_labels.pop(label, None)
        else:
            entry.version_labels[label] = version
    return updated
