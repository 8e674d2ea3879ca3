"""Which versions of a configured model to serve: its version policy applied to the disk.

As TF Serving's FileSystemStoragePathSource does it: version directories are the base path's
children named as numbers; ``specific`` versions missing on disk are skipped with a warning; a
base path that does not exist is an error for the whole poll.
"""

from __future__ import annotations

from pathlib import Path

from tensorflow_serving.config import model_server_config_pb2

from deploy.local.tfserving_standin.identity import log


class PollError(Exception):
    """The file system could not be polled for a model (TF Serving's message)."""


def _version_dirs(config: model_server_config_pb2.ModelConfig) -> dict[int, Path]:
    base_path = Path(config.base_path)
    if not base_path.is_dir():
        raise PollError(
            f"Could not find base path {config.base_path} for servable {config.name} with "
            f"error NOT_FOUND: {config.base_path} not found"
        )
    return {
        int(d.name): d
        for d in base_path.iterdir()
        if d.is_dir() and d.name.isascii() and d.name.isdigit()
    }


def aspired_versions(config: model_server_config_pb2.ModelConfig) -> dict[int, Path]:
    """The version directories the model's policy selects (empty, with a warning, if none)."""
    found = _version_dirs(config)
    policy = config.model_version_policy
    kind = policy.WhichOneof("policy_choice")
    if kind == "all":
        chosen = sorted(found)
    elif kind == "specific":
        chosen = sorted(v for v in set(policy.specific.versions) if v in found)
        for missing in sorted(set(policy.specific.versions) - set(found)):
            log.warning(
                "Version %d of servable %s, which was requested to be served as a 'specific' "
                "version in the servable's version policy, was not found in the file system",
                missing,
                config.name,
            )
    else:
        chosen = sorted(found)[-max(policy.latest.num_versions, 1) :]
    if not chosen:
        log.warning(
            "No versions of servable %s found under base path %s", config.name, config.base_path
        )
    return {version: found[version] for version in chosen}


def poll(config: model_server_config_pb2.ModelServerConfig) -> dict[str, dict[int, Path]]:
    """Aspired versions of every model; one unreadable base path fails the whole poll."""
    return {entry.name: aspired_versions(entry) for entry in config.model_config_list.config}
