"""The server core: the config in force, its labels, and the servable a ModelSpec names.

``reload`` is TF Serving's ServerCore::ReloadConfig: the new config replaces the whole config,
versions it no longer names are unloaded, new ones loaded; the call waits only for models that
are new by name (a new version of a known model loads after the call returns), as TF Serving's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeAlias

from tensorflow_serving.apis import model_pb2
from tensorflow_serving.config import model_server_config_pb2

from deploy.local.tfserving_standin import config_checks
from deploy.local.tfserving_standin.errors import Code, ServingError, invalid
from deploy.local.tfserving_standin.identity import log
from deploy.local.tfserving_standin.manager import ServableManager, State, VersionState
from deploy.local.tfserving_standin.models import PollError, poll
from deploy.local.tfserving_standin.servables import Servable

Config: TypeAlias = model_server_config_pb2.ModelServerConfig
_WAIT_STEP_S = 0.2


def model_spec(name: str, version: int, signature_name: str | None) -> model_pb2.ModelSpec:
    """The spec a response names the servable (and signature) that answered with."""
    spec = model_pb2.ModelSpec(name=name)
    spec.version.value = version
    if signature_name is not None:
        spec.signature_name = signature_name
    return spec


def require_model_spec(request: Any) -> model_pb2.ModelSpec:
    """The request's ModelSpec: every API refuses a request without one."""
    if not request.HasField("model_spec"):
        raise invalid("Missing ModelSpec")
    return request.model_spec


def _names(config: Config) -> set[str]:
    return {entry.name for entry in config.model_config_list.config}


class ServerCore:
    """Resolves model specs to loaded servables; reloads the config."""

    def __init__(self, manager: ServableManager, allow_unavailable_labels: bool) -> None:
        self._manager = manager
        self._allow_unavailable_labels = allow_unavailable_labels
        self._config: Config | None = None
        self._labels: dict[str, dict[str, int]] = {}
        self._reload_lock = threading.Lock()

    def reload(self, config: Config, still_wanted: Callable[[], bool] | None = None) -> None:
        """Apply ``config``; raises ServingError with TF Serving's code and message.

        ``still_wanted`` (a reload call's "is the client still there") bounds the wait for new
        models; without it (start-up) the wait lasts until they load or fail.
        """
        with self._reload_lock:
            old = self._config
            config_checks.check_transition(old, config)
            if config.WhichOneof("config") is None:
                log.info("Taking no action for empty config.")
                return
            config_checks.check_model_config_list(config)
            config_checks.check_no_platform_changes(old, config)
            self._config = config
            self._labels = config_checks.label_map(
                config, self._labels, self._is_available, self._allow_unavailable_labels
            )
            log.info("Adding/updating models.")
            config_checks.check_platforms_supported(config)
            known = _names(old) if old is not None else set()
            new_models = _names(config) - known
            try:
                self._manager.aspire(poll(config))
            except PollError as error:
                if old is None:
                    raise ServingError(Code.NOT_FOUND, str(error)) from None
                # TF Serving logs this and keeps every model as it was until a poll succeeds.
                log.error("FileSystemStoragePathSource encountered a filesystem error: %s", error)
                self._wait_forever(still_wanted)
                return
            self._wait_until_available(new_models, still_wanted)
            log.info("Finished reloading config")

    def _wait_forever(self, still_wanted: Callable[[], bool] | None) -> None:
        # The real server waits for a new model whose base path is missing without end; the
        # stand-in gives up when the caller does.
        while still_wanted is not None and still_wanted():
            time.sleep(_WAIT_STEP_S)

    def _wait_until_available(
        self, models: set[str], still_wanted: Callable[[], bool] | None
    ) -> None:
        step = None if still_wanted is None else _WAIT_STEP_S
        while True:
            failed = self._manager.wait_settled(models, step)
            if self._settled(models):
                break
            if still_wanted is not None and not still_wanted():
                return
        unavailable = {
            model: versions
            for model, versions in failed.items()
            if versions and not self._manager.available(model)
        }
        if unavailable:
            parts = []
            for model, versions in sorted(unavailable.items()):
                version = max(versions)
                error = self._manager.versions(model)[version].error
                reason = f" due to error: {error.status_text()}" if error is not None else ""
                parts.append(f"{{{{name: {model} version: {version}}}{reason}}}, ")
            raise ServingError(
                Code.UNKNOWN,
                f"{len(unavailable)} model(s) did not become available: {{{''.join(parts)}}}",
            )

    def _settled(self, models: set[str]) -> bool:
        busy = (State.START, State.LOADING, State.UNLOADING)
        return all(
            entry.state not in busy
            for model in models
            for entry in self._manager.versions(model).values()
        )

    def _is_available(self, name: str, version: int) -> bool:
        return version in self._manager.available(name)

    def versions(self, name: str) -> dict[int, VersionState]:
        return self._manager.versions(name)

    def _label_version(self, name: str, label: str) -> int:
        labels = self._labels.get(name, {})
        if label not in labels:
            raise invalid(f"Unrecognized servable version label: {label}")
        return labels[label]

    def requested_version(self, spec: model_pb2.ModelSpec) -> int | None:
        """The version the spec asks for, by number or by label; None for the latest."""
        choice = spec.WhichOneof("version_choice")
        if choice == "version_label":
            return self._label_version(spec.name, spec.version_label)
        return int(spec.version.value) if choice == "version" else None

    def servable(self, spec: model_pb2.ModelSpec) -> Servable:
        version = self.requested_version(spec)
        available = self._manager.available(spec.name)
        if version is None:
            if not available:
                raise ServingError(
                    Code.NOT_FOUND, f"Servable not found for request: Latest({spec.name})"
                )
            return available[max(available)]
        if version not in available:
            raise ServingError(
                Code.NOT_FOUND, f"Servable not found for request: Specific({spec.name}, {version})"
            )
        return available[version]
